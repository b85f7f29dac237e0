"""The client address behind per-address limits: forwarded headers count only from LOOM_TRUSTED_PROXIES (none
by default), so rotating X-Forwarded-For cannot lift a limit; a trusted proxy's header is honoured — in
the app and as deployments serve it (`loom serve`)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.signatures import signing
from services.core.signatures.models import Signature
from tests.api.ops.test_served_logging import free_port, loom_serve
from tests.api.signatures.test_rate_limits import _address, _assert_limited, limited_client
from tests.api.signatures.test_signing import body
from tests.factories import make_petition

LIMIT = {"signing_rate_limit_ip": "2/minute"}


def _forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_rotating_x_forwarded_for_from_an_untrusted_peer_cannot_lift_the_limit(
    settings: Settings,
    database_url: str,
    redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    db: AsyncSession,
) -> None:
    petition = await make_petition(db)
    await db.commit()
    url = f"/v1/petitions/{petition.slug}/signatures"
    async with limited_client(settings, database_url, redis_url, sessionmaker, connection, **LIMIT) as http:
        for i in range(2):
            response = await http.post(
                url, json=body(email=f"r{i}@example.org"), headers=_forwarded(_address())
            )
            assert response.status_code == 202, response.text
        _assert_limited(
            await http.post(url, json=body(email="r9@example.org"), headers=_forwarded(_address()))
        )


async def test_a_trusted_proxys_forwarded_address_is_the_client(
    settings: Settings,
    database_url: str,
    redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    db: AsyncSession,
) -> None:
    petition = await make_petition(db)
    await db.commit()
    url = f"/v1/petitions/{petition.slug}/signatures"
    proxied = settings.model_copy(update={"trusted_proxies": ["10.0.0.0/8"]})  # _address() is in 10/8
    first, second = f"198.51.100.{secrets.randbelow(250) + 1}", f"2001:db8::{secrets.token_hex(2)}"
    async with limited_client(proxied, database_url, redis_url, sessionmaker, connection, **LIMIT) as http:
        for i in range(2):
            response = await http.post(url, json=body(email=f"a{i}@example.org"), headers=_forwarded(first))
            assert response.status_code == 202, response.text
        _assert_limited(await http.post(url, json=body(email="a9@example.org"), headers=_forwarded(first)))
        # Another client behind the same proxy has a limit of its own …
        response = await http.post(url, json=body(email="b0@example.org"), headers=_forwarded(second))
        assert response.status_code == 202, response.text
        # … and what the client itself wrote in front of the proxy's entry does not count: the address is
        # the right-most one that is not a trusted proxy.
        spoofed = _forwarded(f"203.0.113.9, {first}, 10.1.2.3")
        _assert_limited(await http.post(url, json=body(email="a8@example.org"), headers=spoofed))
    stored = await db.scalar(select(Signature.ip_hash).where(Signature.email == "b0@example.org"))
    assert stored == signing.ip_hash(settings, second)


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert Settings(trusted_proxies=["10.0.0.1", " 172.16.0.0/12", "::1"]).trusted_proxies == [
        "10.0.0.1/32",
        "172.16.0.0/12",
        "::1/128",
    ]
    assert Settings(env="production", secret_key="x" * 32, database_url="postgresql://db/loom",
                    redis_url="redis://r").trusted_proxies == []  # fmt: skip
    for bad in ("*", "proxy.internal", "10.0.0.0/33"):
        with pytest.raises(ValueError, match="trusted proxies"):
            Settings(trusted_proxies=[bad])


def _serve(
    database_url: str, redis_url: str, tmp_path: Path, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOOM_ENV": "test",
        "LOOM_SECRET_KEY": secrets.token_urlsafe(32),  # limiter keys of this server's own
        "LOOM_LOG_JSON": "true",
        "LOOM_SIGNING_RATE_LIMIT_IP": "1/minute",
        **env,
    }
    log = (tmp_path / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        loom_serve(port), env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2]
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        assert process.poll() is None, "loom serve exited"
        assert time.monotonic() < deadline, "loom serve did not start"
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def _sign_as(base: str, address: str) -> int:
    # No such petition: the limit is applied before the database is asked (then 404), so 429 or 404.
    response = httpx.post(
        f"{base}/v1/petitions/no-such-petition/signatures",
        json={"name": "Jane Doe", "email": "jane@example.org", "country": "BD"},
        headers=_forwarded(address),
        timeout=10,
    )
    assert response.status_code in {404, 429}, response.text
    return response.status_code


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [("", [404, 429]), ('["127.0.0.1"]', [404, 404])],
    ids=["no-proxy-trusted", "local-proxy-trusted"],
)
def test_loom_serve_believes_forwarded_headers_only_from_trusted_proxies(
    database_url: str, redis_url: str, tmp_path: Path, trusted: str, expected: list[int]
) -> None:
    env: dict[str, Any] = {"LOOM_TRUSTED_PROXIES": trusted} if trusted else {}
    process, base = _serve(database_url, redis_url, tmp_path, **env)
    try:
        answers = [_sign_as(base, "198.51.100.1"), _sign_as(base, "198.51.100.2")]
    finally:
        _stop(process)
    assert answers == expected, json.dumps(answers)
