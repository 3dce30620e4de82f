# Build: dependencies from uv.lock into a virtualenv, with no compilers in the final image.
FROM python:3.11-slim AS build
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /srv
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY app ./app
COPY alembic ./alembic
COPY alembic.ini ./
COPY scripts/serve scripts/worker ./scripts/
RUN uv sync --frozen --no-dev

# Run: the same `scripts/serve` (migrate, then uvicorn) as the README's start command.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /srv --shell /usr/sbin/nologin app
WORKDIR /srv
COPY --from=build --chown=10001:10001 /srv /srv
ENV PATH=/srv/.venv/bin:$PATH PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8000 ENVIRONMENT=production
# Numeric, so a runtime that checks for a non-root user can tell without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
# Readiness, not liveness: healthy while the database and Redis answer (GET /health/ready), so
# a replica that cannot reach them is reported unhealthy. The start period covers the
# migration a replica may wait for while another runs it.
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]
# No proxy is trusted unless TRUSTED_PROXIES names it: set it when a proxy fronts the container.
# The same image runs the job worker with `scripts/worker` as its command (docker-compose.yml).
CMD ["scripts/serve"]
