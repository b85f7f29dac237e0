"""The benchmarks' SMTP sink: an aiosmtpd server in a process of its own (so it shares neither the event
loop nor the GIL with what is measured) that accepts every message and keeps nothing, except, with
``--record FILE``, a line ``<time accepted> <recipient>`` per recipient.

    with smtp_sink() as port: ...                  # from a benchmark
    python -m benchmarks.smtp_sink --port 2525 [--record accepted.log]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from benchmarks.common import free_port


class _Sink:
    def __init__(self, record: IO[str] | None) -> None:
        self.record = record

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        if self.record is not None:
            now = time.time()
            self.record.write("".join(f"{now:.6f} {recipient}\n" for recipient in envelope.rcpt_tos))
        return "250 OK"


def serve(port: int, record: Path | None) -> None:
    """Run the sink until standard input closes (the parent's end of the pipe)."""
    from aiosmtpd.controller import Controller

    with record.open("a", buffering=1) if record else _nothing() as file:
        controller = Controller(_Sink(file), hostname="127.0.0.1", port=port)
        controller.start()
        print("ready", flush=True)
        try:
            sys.stdin.read()
        finally:
            controller.stop()


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


@contextmanager
def smtp_sink(record: Path | None = None) -> Iterator[int]:
    """A sink on a free port until the block ends; yields the port."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.smtp_sink", "--port", str(port)]
    if record is not None:
        command += ["--record", str(record)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        yield port
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path)
    args = parser.parse_args()
    serve(args.port, args.record)


if __name__ == "__main__":
    main()
