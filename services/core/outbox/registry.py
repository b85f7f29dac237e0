"""The task registry and what a task sees (:class:`JobContext`, :class:`Retry`): independent of the queue.

Tasks are idempotent coroutines taking ids, never objects, registered with ``@task("domain.name")`` in
``services/worker/<domain>/tasks.py``; their JSON arguments are validated against the annotations when the
job runs. docs/architecture.md, "Tasks".
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, create_model

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncSession

    from services.core.config import Settings

TaskFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class JobContext:
    """What a running task gets: the job's session (committed with the job's completion; follow-up jobs
    go through ``outbox.enqueue(ctx.session, …)``), the settings, the outbox job id and the attempt number
    (1 for the first try)."""

    session: AsyncSession
    settings: Settings
    job_id: uuid.UUID
    attempt: int


class Retry(Exception):
    """Raise from a task to run it again later: after ``defer`` seconds, or with the usual jittered
    exponential backoff when ``defer`` is None. Counts as an attempt (``worker_max_tries``)."""

    def __init__(self, reason: str = "retry requested", *, defer: float | None = None) -> None:
        super().__init__(reason)
        self.defer = defer


@dataclass(frozen=True)
class Task:
    name: str
    fn: TaskFn
    params: type[BaseModel]
    max_tries: int | None = None
    timeout: float | None = None

    def arguments(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments for ``fn``, validated (and converted) from the stored payload."""
        model = self.params.model_validate(payload)
        return {name: getattr(model, name) for name in type(model).model_fields}


REGISTRY: dict[str, Task] = {}


def task(
    name: str, *, max_tries: int | None = None, timeout: float | None = None
) -> Callable[[TaskFn], TaskFn]:
    """Register ``fn(ctx, **ids)`` as the task ``name``. ``max_tries`` and ``timeout`` (seconds)
    override ``worker_max_tries`` and ``worker_job_timeout`` for this task."""

    def register(fn: TaskFn) -> TaskFn:
        existing = REGISTRY.get(name)
        if existing is not None and existing.fn is not fn:
            raise ValueError(f"task {name!r} registered twice")
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"task {name!r} must be an async function")
        REGISTRY[name] = Task(name, fn, _params_model(name, fn), max_tries, timeout)
        return fn

    return register


def _params_model(name: str, fn: TaskFn) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters after the context, so stored JSON becomes typed ids."""
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    parameters = list(signature.parameters.values())
    if not parameters:
        raise TypeError(f"task {name!r} must take the job context as its first parameter")
    fields: dict[str, Any] = {}
    for parameter in parameters[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"task {name!r}: name every argument (no *args/**kwargs)")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(f"task {name!r}: arguments are passed by keyword")
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hints.get(parameter.name, Any), default)
    model: type[BaseModel] = create_model(
        f"TaskParams[{name}]", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model
