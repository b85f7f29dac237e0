"""The ``loom`` command: ops tasks (migrate, create-admin, serve, worker) and the development runner.

With no ``DATABASE_URL`` / ``REDIS_URL`` configured, every command uses the embedded PostgreSQL and Redis
kept under ``LOOM_DATA_DIR`` (started if needed), the same ones ``make run`` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from services.core.config import PROJECT_ROOT, Environment, Settings, get_settings

app = typer.Typer(
    name="loom",
    help="Loom: ops tasks and the development runner.",
    no_args_is_help=True,
    add_completion=False,
)

OPENAPI_PATH = PROJECT_ROOT / "openapi" / "openapi.json"

log = logging.getLogger("services.cli")


def _urls(settings: Settings) -> tuple[str, str]:
    """The configured URLs; the embedded servers' (started if need be) for those not configured."""
    if settings.database_url and settings.redis_url:
        return settings.database_url, settings.redis_url
    from services.core.embedded import EmbeddedUnavailable, resolve_urls  # development only

    try:
        return resolve_urls(settings)
    except EmbeddedUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _freeze_heap() -> None:
    """What a long-running process loaded at start (the app, the tasks, their libraries) lives as long as
    the process: frozen, the garbage collector leaves it alone, in every collection and at exit, where
    going through it all took seconds on a busy machine (and held up Ctrl-C on `loom run`)."""
    gc.collect()
    gc.freeze()


def _exit_on_sigterm() -> None:
    """SIGTERM ends this process through Python's exit, as SIGINT does, so its exit handlers run: they
    stop the embedded servers it started. (uvicorn and arq handle SIGTERM while they run; uvicorn then
    raises it again, which without this would end the process on the spot.)"""

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


def _exit_without_finalizing(status: int = 0) -> NoReturn:
    """End a process that has stopped cleanly (its work recorded, its connections closed) now: the exit
    handlers run (they sign out of the embedded servers and flush the logs), then the process exits without
    the interpreter's finalization, which frees every object one by one — 0.3 to 0.6 s of CPU for the
    worker, seconds on a loaded machine, which made `loom run` kill its worker on Ctrl-C (and overrun
    its 5 s itself)."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Alembic revision to upgrade to.")] = "head",
) -> None:
    """Apply database migrations (Alembic) up to REVISION."""
    from services.core.db.migrate import upgrade

    database_url, _ = _urls(get_settings())
    upgrade(database_url, revision)
    typer.echo(f"database migrated to {revision}")


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's email (login).")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="LOOM_ADMIN_PASSWORD",
            help="The admin's password (prompted for when not given).",
        ),
    ],
) -> None:
    """Create an admin user, or make an existing user an active admin with this password (idempotent)."""
    from services.core.db.engine import create_engine, create_sessionmaker
    from services.core.errors import LoomError
    from services.core.users.repository import email_in_use
    from services.core.users.service import create_admin as create_admin_user

    settings = get_settings()
    database_url, _ = _urls(settings)

    async def run() -> bool:
        engine = create_engine(settings, database_url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                existed = await email_in_use(session, email.strip())
                await create_admin_user(session, email=email, password=password)
                return not existed
        finally:
            await engine.dispose()

    try:
        created = asyncio.run(run())
    except LoomError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("admin created" if created else "admin updated (already existed)")


@app.command("import-signatures")
def import_signatures(
    file: Annotated[Path, typer.Argument(help="A UTF-8 CSV file with a header line.", show_default=False)],
    petition: Annotated[str, typer.Option(help="The petition's slug (or id).")],
    partner: Annotated[
        str | None, typer.Option(help="The member organisation (slug or id) that collected the signatures.")
    ] = None,
    send_confirmation_mail: Annotated[
        bool,
        typer.Option(
            "--send-confirmation-mail",
            help="Mail each row with an email a confirmation link (imported signatures count without it).",
        ),
    ] = False,
    processes: Annotated[
        int,
        typer.Option(
            help="Processes that validate rows while this one reads the file and writes (0: validate here). "
            "Worth it only with idle cores: on a busy machine the hand-over costs more than it saves.",
            min=0,
        ),
    ] = 0,
) -> None:
    """Import signatures (paper, bulk) from a CSV file; columns name, country (required), email,
    postal_code, language, opt_in, source. Imported signatures are attested by the organisation that
    collected them: they count without confirmation and get no confirmation mail unless asked.

    Streams the file: memory stays constant whatever its size (in each validating process too). Good
    rows are kept and bad rows listed by line number. Closed petitions accept imports; rows need no
    email. Exit status: 0 all rows imported, 1 some rows were bad (the good ones are imported), 2 nothing
    imported (unreadable file, unknown petition or partner).
    """
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from services.core.db.engine import create_engine, create_sessionmaker
    from services.core.errors import LoomError
    from services.core.signatures.imports import ImportProgress, ImportReport, import_csv

    settings = get_settings()
    pool = None
    if processes:
        # Forked now, before the progress bar's thread and the database connection exist: the processes
        # inherit the loaded code and nothing else they could trip over.
        pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))
        pool.submit(int).result()
    out, err = Console(), Console(stderr=True)
    try:
        size = file.stat().st_size
        handle = file.open("rb")
    except OSError as exc:
        err.print(f"error: cannot read {file}: {exc.strerror}", markup=False)
        raise typer.Exit(2) from exc
    database_url, _ = _urls(settings)

    async def run(progress: Progress) -> ImportReport:
        task = progress.add_task("importing", total=size or None)

        def chunks() -> Iterator[bytes]:
            while chunk := handle.read(1 << 16):
                progress.advance(task, len(chunk))
                yield chunk

        def counts(state: ImportProgress) -> None:
            progress.update(task, description=f"{state.imported} imported, {state.rejected} bad")

        engine = create_engine(settings, database_url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                return await import_csv(
                    session,
                    petition,
                    chunks(),
                    partner=partner,
                    progress=counts,
                    send_confirmation_mail=send_confirmation_mail,
                    processes=pool,
                    process_count=processes,
                )
        finally:
            await engine.dispose()

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    try:
        with handle, Progress(*columns, console=err, transient=True) as progress:
            report = asyncio.run(run(progress))
    except LoomError as exc:
        err.print(f"error: {exc.detail} Nothing was imported.", markup=False)
        raise typer.Exit(2) from exc
    except Exception as exc:  # the database, say; its message may quote rows, so only the kind is shown
        err.print(f"error: the import failed ({type(exc).__name__}). Nothing was imported.", markup=False)
        raise typer.Exit(2) from exc
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    for error in report.errors:
        err.print(f"line {error.line}: {error.reason}", markup=False)
    if report.errors_truncated:
        err.print(f"… and {report.rejected - len(report.errors)} more bad rows", markup=False)
    out.print(f"{report.imported} imported, {report.rejected} rejected", markup=False)
    raise typer.Exit(1 if report.rejected else 0)


API_PROCESS_HEALTHCHECK_SECONDS = 60


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [LOOM_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [LOOM_API_PORT].")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, max=64, help="API processes (uvicorn workers) on the one port [LOOM_API_WORKERS]."
        ),
    ] = None,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
) -> None:
    """Serve the HTTP API with uvicorn: one process, or ``--workers N`` processes sharing the port (the
    kernel spreads connections over them; each has its own database pool, so N * (LOOM_DB_POOL_SIZE +
    LOOM_DB_MAX_OVERFLOW) connections at most). docs/scaling.md."""
    import uvicorn

    settings = get_settings()
    _exit_on_sigterm()
    _urls(settings)  # exported to the environment for the app (and uvicorn's workers)
    import services.api.app  # noqa: F401 - loaded now, to be frozen

    _freeze_heap()
    uvicorn.run(
        "services.api.app:app",
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=None if reload else (workers or settings.api_workers),
        reload=reload,
        access_log=False,  # Loom logs one line per request itself
        log_config=None,
        # Forwarded headers are believed only from LOOM_TRUSTED_PROXIES, by the app itself; uvicorn's
        # own default would believe any process on 127.0.0.1.
        proxy_headers=False,
        # With --workers, uvicorn's supervisor pings each process and replaces one that does not answer in
        # time. Its default, 5 s, is shorter than a process takes to start on a busy machine (the answering
        # thread starts after the imports): every process was replaced before it could serve, forever.
        timeout_worker_healthcheck=API_PROCESS_HEALTHCHECK_SECONDS,
    )


@app.command()
def worker(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 0 if a worker is alive and healthy, 1 otherwise.")
    ] = False,
) -> None:
    """Run the background worker (arq), or check a running worker's health."""
    from services.worker import settings as worker_settings

    settings = get_settings()
    _exit_on_sigterm()
    _urls(settings)
    if check:
        healthy = asyncio.run(worker_settings.check_health(settings))
        typer.echo("worker healthy" if healthy else "worker unhealthy")
        raise typer.Exit(0 if healthy else 1)
    worker_settings.run_worker(settings)
    _exit_without_finalizing()


@app.command()
def openapi(
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the committed file differs from the generated one.")
    ] = False,
    output: Annotated[Path, typer.Option(help="Where to write the document.")] = OPENAPI_PATH,
) -> None:
    """Write the OpenAPI document (openapi/openapi.json), or check it is up to date."""
    from services.api.openapi import render_openapi

    text = render_openapi()
    if check:
        current = output.read_text() if output.exists() else ""
        if current != text:
            typer.echo(f"{output} is out of date: run `make openapi` and commit it", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    typer.echo(f"wrote {output}")


# `loom run`: a worker that exits is started again after 1 s, 2 s, 4 s … (at most 30 s; back to 1 s once
# it has run that long). On Ctrl-C the API and the worker get CHILD_STOP_SECONDS to stop before they are
# killed, so that everything, the embedded servers too, is gone within 5 s (the servers stop in about 1 s once
# a CHECKPOINT ran meanwhile; a worker recording its last sent mail on a busy machine needed more than 2 s).
WORKER_RESTART_SECONDS = 1.0
WORKER_RESTART_MAX_SECONDS = 30.0
CHILD_STOP_SECONDS = 3.0


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Interface to bind [LOOM_API_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [LOOM_API_PORT].")] = None,
) -> None:
    """Development: start embedded servers if needed, migrate, then run the API and the worker together.

    A worker that dies is started again; Ctrl-C stops everything this command started.
    """
    from services.core.db.migrate import upgrade
    from services.core.logging import configure_logging

    settings = get_settings()
    configure_logging(settings)
    host = host or settings.api_host
    port = port or settings.api_port
    catch_mail = settings.smtp_url is None and settings.env is not Environment.production
    if catch_mail:
        from services.core.embedded import EmbeddedUnavailable, require_catcher  # development only

        try:
            require_catcher()
        except EmbeddedUnavailable as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    database_url, redis_url = _urls(settings)
    upgrade(database_url)
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104
    # Links in mail (confirm, unsubscribe) point at this API unless LOOM_PUBLIC_URL says otherwise.
    env.setdefault("LOOM_PUBLIC_URL", f"http://{shown}:{port}")
    catcher = None
    if catch_mail:
        from services.core.mail.catcher import Catcher, mail_dir  # development only

        catcher = Catcher(mail_dir(settings.data_dir))
        env["LOOM_SMTP_URL"] = catcher.start()
    loom = [sys.executable, "-m", "services.cli"]

    def start(*command: str) -> subprocess.Popen[bytes]:
        # Own sessions, so the terminal's Ctrl-C reaches only this process, which then stops each child
        # once, with SIGTERM (a second SIGINT would make uvicorn abandon its graceful shutdown).
        return subprocess.Popen([*loom, *command], env=env, start_new_session=True)  # noqa: S603

    api = start("serve", "--host", host, "--port", str(port))
    worker = start("worker")
    typer.echo(
        "\n".join(
            [
                "",
                f"  Loom API:          http://{shown}:{port}",
                f"  Interactive docs:  http://{shown}:{port}/docs",
                f"  Database:          {_describe('PostgreSQL', database_url, settings.database_url)}",
                f"  Redis:             {_describe('Redis', redis_url, settings.redis_url)}",
                (
                    f"  Mail:              caught in {catcher.directory} by {catcher.url.split('?')[0]}"
                    " (read it: loom mail show)"
                    if catcher is not None
                    else "  Mail:              sent through LOOM_SMTP_URL"
                ),
                "  Press Ctrl-C to stop.",
                "",
            ]
        )
    )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    delay = WORKER_RESTART_SECONDS
    worker_started = time.monotonic()
    restart_at: float | None = None
    try:
        while not stopping and api.poll() is None:
            now = time.monotonic()
            if restart_at is None and worker.poll() is not None:
                if now - worker_started > WORKER_RESTART_MAX_SECONDS:
                    delay = WORKER_RESTART_SECONDS  # it had been running a while: a new failure
                log.warning(
                    "worker exited (%s); starting it again in %.0f s", _exit_status(worker.returncode), delay
                )
                restart_at = now + delay
                delay = min(delay * 2, WORKER_RESTART_MAX_SECONDS)
            elif restart_at is not None and now >= restart_at:
                worker = start("worker")
                worker_started, restart_at = now, None
            time.sleep(0.1)
        if not stopping:
            log.error("API exited (%s); stopping", _exit_status(api.returncode))
    finally:
        log.info("stopping the API and the worker")
        _checkpoint_embedded(settings)  # not waited for: the server's stop waits for it anyway
        _stop_children({"API": api, "worker": worker})
        if catcher is not None:
            catcher.stop()
        from services.core.embedded import stop_started

        stop_started()
    # Everything it started is gone: exit now, without the interpreter's teardown (migrations and the
    # database drivers were loaded here; freeing them one by one took seconds of the 5 s on a busy machine).
    _exit_without_finalizing(0 if stopping else 1)


def _checkpoint_embedded(settings: Settings) -> threading.Thread | None:
    """A CHECKPOINT of the embedded PostgreSQL while the children stop (none when a URL is configured)."""
    if settings.database_url:
        return None
    from services.core.embedded import checkpoint_started  # development only

    return checkpoint_started()


def _exit_status(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"signal {-returncode}"
    return f"exit status {returncode}"


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each child still running; those not gone after ``CHILD_STOP_SECONDS`` are killed."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_SECONDS
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.1f s: killed", name, CHILD_STOP_SECONDS)
            child.kill()
            child.wait()


mail_app = typer.Typer(
    name="mail", help="Read the mail `loom run` caught (development, no LOOM_SMTP_URL).", no_args_is_help=True
)
app.add_typer(mail_app)


@mail_app.command("list")
def mail_list(
    limit: Annotated[int, typer.Option(help="How many messages to list.")] = 20,
) -> None:
    """List caught messages, newest first (number, time, recipient, subject)."""
    from services.core.mail.catcher import caught, mail_dir, read

    directory = mail_dir(get_settings().data_dir)
    files = caught(directory)
    if not files:
        typer.echo(f"no mail caught yet in {directory}")
        return
    for number, path in enumerate(files[:limit], start=1):
        message = read(path)
        typer.echo(
            f"{number:>3}  {message.get('Date', '')}  {message.get('To', '')}  {message.get('Subject', '')}"
        )


@mail_app.command("show")
def mail_show(
    number: Annotated[int, typer.Argument(help="1 is the latest message, 2 the one before...")] = 1,
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part instead of the text.")] = False,
    as_received: Annotated[bool, typer.Option("--raw", help="Print the whole message as received.")] = False,
) -> None:
    """Print a caught message: its headers and text (the latest by default)."""
    from services.core.mail.catcher import body, caught, mail_dir, raw, read

    directory = mail_dir(get_settings().data_dir)
    files = caught(directory)
    if not 1 <= number <= len(files):
        typer.echo(f"no message {number} in {directory} ({len(files)} caught)", err=True)
        raise typer.Exit(1)
    path = files[number - 1]
    if as_received:
        typer.echo(raw(path), nl=False)
        return
    message = read(path)
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
        if message.get(name) is not None:
            typer.echo(f"{name}: {message[name]}")
    typer.echo(f"File: {path}")
    typer.echo("")
    typer.echo(body(message, html=html))


def _describe(kind: str, url: str, configured: str | None) -> str:
    """Where a server is, for the banner: the socket or host the URL points at, never a password."""
    from services.core.addresses import database_address, redis_address

    where = database_address(url) if kind == "PostgreSQL" else redis_address(url)
    if configured is None:
        return f"embedded {kind} at {where} (data in {get_settings().data_dir})"
    return f"{kind} at {where}"


def main() -> None:
    app()


if __name__ == "__main__":
    main()


__all__ = ["app", "main"]
