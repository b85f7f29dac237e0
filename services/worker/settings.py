"""The worker process: ``loom worker`` (``run_worker``), ``loom worker --check`` (``check_health``), or arq's
CLI: ``arq services.worker.settings.WorkerSettings``.

:func:`load_tasks` imports every ``services/worker/<domain>/tasks.py``; ``WorkerSettings`` is built on first
access (PEP 562 ``__getattr__``), so importing this module starts nothing. docs/architecture.md.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import logging
import os
import pkgutil
from functools import cache
from typing import Any

from services.core.addresses import database_address, redis_address
from services.core.config import Settings, get_settings
from services.core.jobs import QUEUE_NAME
from services.worker import runtime

log = logging.getLogger(__name__)

WORKER_PACKAGE = "services.worker"


def load_tasks(package_name: str = WORKER_PACKAGE) -> list[str]:
    """Import every ``services.worker.<domain>.tasks`` module; returns their names."""
    package = importlib.import_module(package_name)
    loaded = []
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg:
            continue
        name = f"{package_name}.{module.name}.tasks"
        if importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name)
        loaded.append(name)
    return loaded


def urls(settings: Settings) -> tuple[str, str]:
    """The database and Redis URLs: configured ones, else the embedded servers'."""
    database_url = settings.database_url or os.environ.get("DATABASE_URL")
    redis_url = settings.redis_url or os.environ.get("REDIS_URL")
    if database_url and redis_url:
        return database_url, redis_url
    from services.core.embedded import resolve_urls

    return resolve_urls(settings)


def options(
    settings: Settings | None = None,
    *,
    queue_name: str = QUEUE_NAME,
    tuning: runtime.Tuning | None = None,
    relay: bool = True,
    loops: bool = True,
) -> dict[str, Any]:
    """The worker's configuration (arq ``Worker`` keyword arguments), tasks loaded."""
    settings = settings or get_settings()
    load_tasks()
    database_url, redis_url = urls(settings)
    return runtime.worker_options(
        settings,
        database_url=database_url,
        redis_url=redis_url,
        queue_name=queue_name,
        tuning=tuning,
        relay=relay,
        loops=loops,
    )


def run_worker(settings: Settings | None = None) -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM (finishes the running jobs first... within
    arq's limits: running jobs are cancelled and, being idempotent, run again later)."""
    from services.core.logging import configure_logging

    settings = settings or get_settings()
    configure_logging(settings)
    database_url, redis_url = urls(settings)
    log.info(
        "worker using PostgreSQL at %s and Redis at %s",
        database_address(database_url),
        redis_address(redis_url),
    )
    worker_options = options(settings)
    # What is loaded now lives as long as the process: frozen, the garbage collector skips it (in every
    # collection, and at exit, where going through it took seconds on a busy machine).
    gc.collect()
    gc.freeze()
    runtime.run_worker(worker_options, redis_address=redis_address(redis_url))


async def check_health(settings: Settings | None = None, queue_name: str = QUEUE_NAME) -> bool:
    """True if a worker recorded its health key in Redis within ``worker_health_check_seconds``."""
    settings = settings or get_settings()
    _, redis_url = urls(settings)
    return await runtime.check_health(redis_url, queue_name)


@cache
def _worker_settings_class() -> type:
    return type("WorkerSettings", (), options())


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        return _worker_settings_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
