"""The baseline of the public signing benchmark (P1): a minimal FastAPI + asyncpg app, run like Loom
(uvicorn, one worker), doing one ``INSERT … ON CONFLICT DO NOTHING`` per request into a scratch table.

    BASELINE_DATABASE_URL=postgresql://… uvicorn benchmarks.baseline_app:app --workers 1

Its asyncpg pool holds up to ``BASELINE_POOL_SIZE`` connections (20 by default: Loom's signing engine
holds ``LOOM_DB_POOL_SIZE`` + ``LOOM_DB_MAX_OVERFLOW`` = 10 + 10). The body is parsed into a pydantic
model with plain fields, as any FastAPI app would; nothing is normalised, rate-limited or hashed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

TABLE = "bench_baseline_signatures"
_INSERT = (
    f"INSERT INTO {TABLE} (petition, email, name, country, postal_code, language, opt_in, source) "  # noqa: S608 - a constant table name
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
)
_ACCEPTED = b'{"status":"pending_confirmation"}'


class SignatureIn(BaseModel):
    name: str
    email: str | None = None
    country: str
    postal_code: str | None = None
    language: str | None = None
    opt_in: bool = False
    partner: str | None = None
    source: str | None = None
    website: str | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    size = int(os.environ.get("BASELINE_POOL_SIZE", "20"))
    pool = await asyncpg.create_pool(os.environ["BASELINE_DATABASE_URL"], min_size=size, max_size=size)
    await pool.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (petition text NOT NULL, email text NOT NULL, name text, "
        "country char(2), postal_code text, language text, opt_in boolean NOT NULL, source text, "
        "created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (petition, email))"
    )
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/petitions/{petition}/signatures", status_code=202)
async def sign(petition: str, body: SignatureIn, request: Request) -> Response:
    await request.app.state.pool.execute(
        _INSERT,
        petition,
        body.email or "",
        body.name,
        body.country,
        body.postal_code,
        body.language,
        body.opt_in,
        body.source,
    )
    return Response(_ACCEPTED, status_code=202, media_type="application/json")
