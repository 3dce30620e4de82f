"""The app uvicorn serves, built by its factory: `uvicorn --factory app.main:create_app`
(scripts/serve). Importing this module builds nothing."""

from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa_exc
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import __version__, tracing
from app.bootstrap import Container
from app.config import Settings, get_settings
from app.lifespan import lifespan
from app.logs import configure_logging
from app.presentation.deps import API_PREFIX, install_services
from app.presentation.docs import ASSETS_URL, DOCS_PATHS, DocumentedFastAPI, install_docs
from app.presentation.errors import install_error_handlers, service_unavailable
from app.presentation.middleware import (
    BodySizeLimitMiddleware,
    EdgeMiddleware,
    HeadAsGetMiddleware,
    ProblemCORSMiddleware,
)
from app.presentation.routers import (
    activity,
    auth,
    events,
    health,
    invitations,
    projects,
    sync,
    todos,
    users,
    webhooks,
)

if TYPE_CHECKING:  # the SDK is imported only when tracing is on (app/tracing)
    from opentelemetry.sdk.trace import TracerProvider

DESCRIPTION = (
    "Authenticated todo management. Errors are RFC 9457 problem+json. "
    "Token responses are `Cache-Control: no-store`; every other `/api/v1` response is "
    "`private, no-cache` with `Vary: Authorization`: a browser may keep it but revalidates "
    "it (`ETag`, `If-None-Match`), and shared caches never store it."
)

TAGS = [
    {"name": "auth", "description": "Accounts and tokens: register, log in, refresh, log out."},
    {"name": "users", "description": "Your account, and (admins) everyone's."},
    {"name": "todos", "description": "Your todos: filters, keyset pages, trash, ETags."},
    {"name": "projects", "description": "Projects, shared with members by invitation."},
    {"name": "invitations", "description": "Invite to a project; preview and accept a token."},
    {"name": "activity", "description": "Who changed what, per todo and per project."},
    {
        "name": "sync",
        "description": "Keep an offline copy exact (sync tokens), and live events (SSE).",
    },
    {
        "name": "webhooks",
        "description": "Your projects' events POSTed to your URL, signed (Standard Webhooks), "
        "retried, and logged per delivery.",
    },
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

# Infrastructure faults (database or Redis down): a 503 the client may retry.
FAULTS = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)


def create_app(
    settings: Settings | None = None, *, tracer_provider: "TracerProvider | None" = None
) -> FastAPI:
    """`tracer_provider`: trace to it; by default, to the collector the environment names."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    container = Container(
        settings, tracer_provider=tracer_provider or tracing.provider_from_environment()
    )
    app = DocumentedFastAPI(
        title="Todo API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan(container),
        docs_url=None,
        redoc_url=None,
        openapi_tags=TAGS,
        # A path with a trailing slash is a 404 like any unknown path, never a redirect: the
        # redirect's Location would be built from the request's Host header.
        redirect_slashes=False,
        # Off unless tracing is on: FastAPI's native OpenTelemetry would otherwise look up
        # the global providers on every request.
        telemetry=tracing.fastapi_telemetry(container.tracer_provider),
    )
    install_services(app, container)
    install_error_handlers(app)
    install_fault_handlers(app)
    install_routers(app)
    install_docs(app)
    install_middleware(app, container)
    return app


def install_fault_handlers(app: FastAPI) -> None:
    for fault in FAULTS:
        app.add_exception_handler(fault, service_unavailable)


def install_routers(app: FastAPI) -> None:
    # Routes are matched one by one, in order: the cheapest and busiest first.
    app.router.routes.append(health.liveness)
    routers = (
        health.router,
        todos.router,
        projects.router,
        sync.router,
        events.router,
        activity.router,
        invitations.router,
        webhooks.router,
        users.router,
        auth.router,
    )
    for router in routers:
        add_routes(app, router)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, served by the app's own router. Each router is built with its full
    prefix, so its routes are complete as they stand (path, tags, dependencies, responses) and
    `app.routes` is the documented list of what the app serves. `include_router` would keep
    the router as a node of its own that every request walks through on its way to a route;
    the app's own routes are matched directly (docs/performance.md)."""
    app.router.routes.extend(router.routes)


def install_middleware(app: FastAPI, container: Container) -> None:
    settings = container.settings
    # Added innermost first: the edge wraps everything, so even a 413 or 500 has a request id.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeadAsGetMiddleware)
    # Always installed, so a preflight from an origin not allowed (any, with none allowed) is
    # a 400 `cors_refused` that says so, never a 405 that reads like a wrong route.
    app.add_middleware(
        ProblemCORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "If-Match",
            "If-None-Match",
            "Idempotency-Key",
            "Last-Event-ID",
            "X-Request-ID",
        ],
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
    if container.tracer_provider is not None:
        app.add_middleware(tracing.RequestIdAttribute)
    app.add_middleware(
        EdgeMiddleware,
        registry=container.metrics_registry,
        docs_paths=DOCS_PATHS,
        assets_path=ASSETS_URL,
        hsts=settings.environment == "production",
        api_prefix=API_PREFIX,
        token_paths=[API_PREFIX + path for path in auth.TOKEN_PATHS],
        max_headers=settings.max_headers,
    )
    if settings.trusted_proxies:
        # Outermost, so the client address is settled before anything reads it. uvicorn's own
        # copy is off (scripts/serve): it would trust 127.0.0.1 whatever this says.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
