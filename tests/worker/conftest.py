from tests.worker.fixtures import effects_table, factory, job_queue_name, job_settings, queue, worker

__all__ = ["effects_table", "factory", "job_queue_name", "job_settings", "queue", "worker"]
