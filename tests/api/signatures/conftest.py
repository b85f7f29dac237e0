"""Fixtures of the signature API tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.worker.signatures import pipeline
from tests.api.network.conftest import api_key_for, headers_for

__all__ = ["api_key_for", "headers_for", "run_pipeline"]

RunPipeline = Callable[[], Awaitable[pipeline.TickResult]]


@pytest.fixture
def run_pipeline(app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]) -> RunPipeline:
    """One tick of the worker's signature pipeline, inside the test's transaction."""

    async def run() -> pipeline.TickResult:
        return await pipeline.run_once(sessionmaker, app.state.queue, app.state.settings)

    return run
