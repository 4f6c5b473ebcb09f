# One image for every function unit, the migration job and the smoke-test job.
#
#   DOCKER_BUILDKIT=1 docker build -t imangor .
#   docker run --rm -e FUNCTION_TARGET=health -p 8080:8080 imangor
#
# Cloud Run sets PORT; Terraform sets FUNCTION_TARGET per unit; the migration job runs
# `python -m imangor.migrate`. Needs BuildKit (uv is mounted, never installed in the image).
FROM python:3.11.18-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app

RUN groupadd --system --gid 10001 imangor \
    && useradd --system --uid 10001 --gid imangor --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin imangor

# Third-party dependencies exactly as locked (no dev or local groups), compiled to bytecode.
# This layer is rebuilt only when pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN --mount=from=ghcr.io/astral-sh/uv:0.13.8,source=/uv,target=/usr/local/bin/uv \
    uv sync --frozen --no-dev --no-group local --no-install-project

# The code. imangor is installed editable from shared/, so it finds functions/, migrations/
# and alembic.ini next to it, as in the repository.
COPY README.md alembic.ini ./
COPY shared ./shared
COPY functions ./functions
COPY migrations ./migrations
COPY infra/tools/smoke.py ./infra/tools/smoke.py
RUN --mount=from=ghcr.io/astral-sh/uv:0.13.8,source=/uv,target=/usr/local/bin/uv \
    uv sync --frozen --no-dev --no-group local \
    && python -m compileall -q shared functions migrations infra

USER 10001:10001
ENV FUNCTION_TARGET=health \
    PORT=8080
EXPOSE 8080
CMD ["/bin/sh", "-c", "exec functions-framework --target=\"$FUNCTION_TARGET\" --source=\"functions/$FUNCTION_TARGET/main.py\" --port=\"$PORT\""]
