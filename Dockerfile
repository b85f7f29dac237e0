# syntax=docker/dockerfile:1
# The image for the API and the worker: `loom` is the entry point (`loom serve`, `loom worker`,
# `loom migrate`, `loom create-admin …`).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# The uv that wrote uv.lock; installed from PyPI.
ARG UV_VERSION=0.13.8
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first, so code changes do not reinstall them. --frozen: exactly what uv.lock says;
# --no-default-groups: no dev tools and no embedded servers (production always has both URLs).
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-default-groups --no-install-project
COPY alembic.ini ./
COPY migrations ./migrations
COPY services ./services
RUN uv sync --frozen --no-default-groups \
    && python -m compileall -q services migrations

FROM ${PYTHON_IMAGE}
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 loom \
    && useradd --system --uid 10001 --gid loom --home-dir /home/loom --create-home --shell /usr/sbin/nologin loom
# Root owns the code; the loom user can read and run it, not change it.
COPY --from=build /app /app
WORKDIR /app
USER loom
EXPOSE 8000
ENTRYPOINT ["loom"]
CMD ["serve"]
