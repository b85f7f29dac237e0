"""`make bench`: every benchmark, each printing ratios against a baseline measured in the same run."""

from benchmarks import api, mail, mail_latency, registry, signatures, worker

if __name__ == "__main__":
    worker.main([])
    api.main([])
    signatures.main([])
    mail.main([])
    mail_latency.main([])
    registry.main([])
