"""The composition root: settings, adapters, middleware, error handlers and routers."""

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING

from fastapi import FastAPI
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import __version__, tracing
from app.application.auth import ActorCache, revocations_in_force
from app.application.pagination import CursorCodec
from app.application.users import AdminBootstrap
from app.config import Settings, get_settings
from app.domain.errors import EmailTaken
from app.infrastructure.clock import SystemClock
from app.infrastructure.db import create_engine
from app.infrastructure.passwords import common_passwords
from app.infrastructure.redis import (
    RATE_LIMIT_PREFIX,
    InMemoryRevocationList,
    RedisRevocationList,
)
from app.infrastructure.security import Argon2PasswordHasher, JwtTokenIssuer
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from app.logs import configure_logging
from app.presentation.deps import API_PREFIX, Adapters, user_service
from app.presentation.docs import DOCS_PATHS, install_docs
from app.presentation.errors import install_error_handlers, service_unavailable
from app.presentation.middleware import (
    BodySizeLimitMiddleware,
    EdgeMiddleware,
    ProblemCORSMiddleware,
)
from app.presentation.rate_limit import RateLimiter
from app.presentation.routers import auth, health, todos, users
from app.presentation.routers.health import MetricsAccess

if TYPE_CHECKING:  # the SDK is imported only when tracing is on (app/tracing)
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

TAGS = [
    {"name": "auth", "description": "Accounts and tokens: register, log in, refresh, log out."},
    {"name": "users", "description": "Your account, and (admins) everyone's."},
    {"name": "todos", "description": "Your todos: filters, keyset pages, trash, ETags."},
    {"name": "operations", "description": "Health checks and metrics."},
]

EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "X-Request-ID",
    "Idempotent-Replayed",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]


def _rate_limit_storage(settings: Settings) -> Storage:
    if settings.redis_url:
        return RedisStorage(
            "async+" + settings.redis_url,
            implementation="redispy",
            key_prefix=RATE_LIMIT_PREFIX,
            socket_timeout=1,
            socket_connect_timeout=1,
        )
    return MemoryStorage()


def build_adapters(settings: Settings, engine: AsyncEngine, redis: Redis | None) -> Adapters:
    secret = settings.secret_key.get_secret_value()

    async def database_ready() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    readiness: dict[str, Callable[[], Awaitable[None]]] = {"database": database_ready}
    if redis is not None:

        async def redis_ready() -> None:
            await redis.ping()

        readiness["redis"] = redis_ready
    tokens = JwtTokenIssuer(
        secret=secret,
        algorithm=settings.jwt_algorithm,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=timedelta(minutes=settings.access_token_expire_minutes),
        refresh_ttl=timedelta(days=settings.refresh_token_expire_days),
    )
    clock = SystemClock()

    rate_limits = _rate_limit_storage(settings)

    async def revocations_on_record() -> dict[str, timedelta]:
        async with SqlAlchemyUnitOfWork(engine, read_only=True) as uow:
            return await revocations_in_force(uow, access_ttl=tokens.access_ttl, now=clock.now())

    return Adapters(
        uow_factory=lambda *, read_only=False: SqlAlchemyUnitOfWork(engine, read_only=read_only),
        hasher=Argon2PasswordHasher(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
            concurrency=settings.password_hash_concurrency,
        ),
        tokens=tokens,
        revocations=(
            RedisRevocationList(redis, revocations_on_record)
            if redis
            else InMemoryRevocationList(revocations_on_record, counter=rate_limits)
        ),
        actors=ActorCache(),
        clock=clock,
        cursors=CursorCodec(secret.encode()),
        common_passwords=common_passwords(),
        rate_limiter=RateLimiter(
            rate_limits,
            enabled=settings.rate_limit_enabled,
            limits={
                "login": settings.rate_limit_login,
                "login_ip": settings.rate_limit_login_ip,
                "register": settings.rate_limit_register,
                "refresh": settings.rate_limit_refresh,
                "default": settings.rate_limit_default,
            },
        ),
        readiness=readiness,
    )


async def ensure_first_admin(adapters: Adapters, *, email: str, password: str) -> None:
    """FIRST_ADMIN_EMAIL at start-up: safe on every restart, and when several instances start
    at once. Logs what it did, never the password."""
    for _ in range(2):
        async with adapters.uow_factory() as uow:
            try:
                outcome = await user_service(uow, adapters).bootstrap_admin(
                    email=email, password=password
                )
            except EmailTaken:  # another instance created it between our read and write
                continue
        level = logging.WARNING if outcome is AdminBootstrap.EMAIL_IN_USE else logging.INFO
        log.log(level, "FIRST_ADMIN_EMAIL %s: %s", email, outcome.value)
        return


@cache  # once per process: what is frozen is never collected
def tune_garbage_collector() -> None:
    """A request allocates thousands of objects: at Python's default threshold (700) the
    collector ran several times per request, and a full collection walked every module, model
    and compiled statement, a pause of tens of milliseconds on whichever request was unlucky.
    What exists at start-up lives as long as the process, so it is frozen out of the
    collector's sight, and young collections run less often. Measured with bench/http: list
    p99 at 32 connections from about 180 ms to about 60 ms, and some 40 % more requests."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def create_app(
    settings: Settings | None = None, *, tracer_provider: "TracerProvider | None" = None
) -> FastAPI:
    """`tracer_provider`: trace to it; by default, to the collector the environment names."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    tracer_provider = tracer_provider or tracing.provider_from_environment()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url, pool_size=settings.db_pool_size, autocommit=True
        )
        redis = (
            Redis.from_url(
                settings.redis_url,
                socket_timeout=2,
                socket_connect_timeout=2,
                health_check_interval=30,
                retry_on_timeout=True,
            )
            if settings.redis_url
            else None
        )
        tracing.instrument(tracer_provider, engine)
        adapters = build_adapters(settings, engine, redis)
        app.state.adapters = adapters
        try:
            if settings.first_admin_email and settings.first_admin_password:
                await ensure_first_admin(
                    adapters,
                    email=settings.first_admin_email,
                    password=settings.first_admin_password.get_secret_value(),
                )
            elif settings.first_admin_email:
                log.warning("FIRST_ADMIN_EMAIL is set without FIRST_ADMIN_PASSWORD: ignored")
            log.info(
                "serving on %s with %s",
                "PostgreSQL" if not settings.is_sqlite else "SQLite",
                "Redis" if redis else "in-process stores",
            )
            tune_garbage_collector()
            yield
        finally:  # after uvicorn's graceful shutdown: every request has finished or was cut
            await engine.dispose()
            if redis is not None:
                await redis.aclose()
            await tracing.shutdown(tracer_provider)

    app = FastAPI(
        title="Todo API",
        version=__version__,
        description="Authenticated todo management. Errors are RFC 9457 problem+json. "
        "Token responses are `Cache-Control: no-store`; every other `/api/v1` response is "
        "`private, no-cache` with `Vary: Authorization`: a browser may keep it but revalidates "
        "it (`ETag`, `If-None-Match`), and shared caches never store it.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_tags=TAGS,
        # Off unless tracing is on: FastAPI's native OpenTelemetry would otherwise look up
        # the global providers on every request.
        telemetry=tracing.fastapi_telemetry(tracer_provider),
    )
    install_error_handlers(app)
    for fault in (
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
        RedisConnectionError,
        RedisTimeoutError,
    ):
        app.add_exception_handler(fault, service_unavailable)

    # Routes are matched one by one, in order: the cheapest and busiest first, in one level.
    app.include_router(health.router)
    for router in (todos.router, users.router, auth.router):
        app.include_router(router, prefix=API_PREFIX)
    install_docs(app)

    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    app.state.metrics_access = MetricsAccess(
        token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
        open_without_token=settings.environment != "production",
    )
    # Added innermost first: the edge wraps everything, so even a 413 or 500 has a request id.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    if tracer_provider is not None:
        app.add_middleware(tracing.RequestIdAttribute)
    app.add_middleware(
        EdgeMiddleware,
        registry=registry,
        docs_paths=DOCS_PATHS,
        hsts=settings.environment == "production",
        api_prefix=API_PREFIX,
        token_paths=[API_PREFIX + path for path in auth.TOKEN_PATHS],
    )
    if settings.trusted_proxies:
        # Outermost, so the client address is settled before anything reads it. uvicorn's own
        # copy is off (scripts/serve): it would trust 127.0.0.1 whatever this says.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app


app = create_app()
