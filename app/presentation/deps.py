"""Every dependency the routers take, as Annotated aliases, on the services app/bootstrap.py
builds."""

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Annotated, Any, Protocol
from uuid import UUID

from fastapi import Depends, FastAPI, Form, Request
from prometheus_client import CollectorRegistry

from app.application.activity import ActivityService
from app.application.auth import AuthService
from app.application.events import EventService, EventStream
from app.application.invitations import InvitationService
from app.application.ports import RevocationList, TokenIssuer, UnitOfWork
from app.application.projects import ProjectService
from app.application.sync import SyncService
from app.application.todos import TodoService
from app.application.users import UserService
from app.application.webhooks import WebhookService
from app.domain.errors import InvalidSyncToken, InvalidToken
from app.domain.users import PASSWORD_MAX_LENGTH, Actor, normalise_email
from app.logs import request_context
from app.presentation.errors import HTTPProblem
from app.presentation.metrics import MetricsAccess
from app.presentation.middleware import HEAD_AS_GET
from app.presentation.rate_limit import RateLimiter, RateLimitState, client_ip
from app.presentation.schemas.auth import LoginRequest
from app.presentation.schemas.common import NO_NUL
from app.presentation.schemas.sync import TOKEN_MAX_LENGTH as SYNC_TOKEN_MAX_LENGTH
from app.presentation.schemas.users import MeUpdate

API_PREFIX = "/api/v1"


class Services(Protocol):
    """What the request dependencies take from the composition root (app/bootstrap.py's
    Container): the services on the request's unit of work, and what the edge uses itself."""

    @property
    def tokens(self) -> TokenIssuer: ...
    @property
    def rate_limiter(self) -> RateLimiter: ...
    @property
    def readiness(self) -> Mapping[str, Callable[[], Awaitable[None]]]: ...
    @property
    def metrics_registry(self) -> CollectorRegistry: ...
    @property
    def metrics_access(self) -> MetricsAccess: ...

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork: ...
    async def refresh_job_metrics(self) -> None:
        """The job and delivery gauges, read now (a store that cannot answer leaves them)."""

    def auth_service(
        self, uow: UnitOfWork, *, revocations: RevocationList | None = None
    ) -> AuthService:
        """`revocations`: the list this service checks tokens against, if not the app's own."""

    def user_service(self, uow: UnitOfWork) -> UserService: ...
    def todo_service(self, uow: UnitOfWork) -> TodoService: ...
    def project_service(self, uow: UnitOfWork) -> ProjectService: ...
    def invitation_service(self, uow: UnitOfWork) -> InvitationService: ...
    def activity_service(self, uow: UnitOfWork) -> ActivityService: ...
    def sync_service(self, uow: UnitOfWork) -> SyncService: ...
    def webhook_service(self, uow: UnitOfWork) -> WebhookService: ...
    @property
    def event_service(self) -> EventService: ...


def install_services(app: FastAPI, services: Services) -> None:
    """The app's only state: its container, which `services_of` reads back per request."""
    app.state.container = services


# The dependencies below are few and flat, and all `async def`: FastAPI runs a plain `def` one
# in the thread pool (a thread hop per request), and every node of the graph costs every
# request. The services come straight from the app, not through a dependency of their own.
def services_of(request: Request) -> Services:
    services: Services = request.app.state.container
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


# A service that may write owns its request's unit of work, a transaction (one graph node, not
# two): the connection is taken at its first statement and given back when the request is done.
async def get_auth_service(request: Request) -> AsyncIterator[AuthService]:
    async with services_of(request).unit_of_work() as uow:
        yield services_of(request).auth_service(uow)


async def get_user_service(request: Request) -> AsyncIterator[UserService]:
    async with services_of(request).unit_of_work() as uow:
        yield services_of(request).user_service(uow)


async def get_todo_service(request: Request) -> AsyncIterator[TodoService]:
    async with services_of(request).unit_of_work() as uow:
        yield services_of(request).todo_service(uow)


async def get_project_service(request: Request) -> AsyncIterator[ProjectService]:
    async with services_of(request).unit_of_work() as uow:
        yield services_of(request).project_service(uow)


async def get_invitation_service(request: Request) -> AsyncIterator[InvitationService]:
    async with services_of(request).unit_of_work() as uow:
        yield services_of(request).invitation_service(uow)


async def get_webhook_service(request: Request) -> AsyncIterator[WebhookService]:
    async with services_of(request).unit_of_work() as uow:
        yield services_of(request).webhook_service(uow)


# A safe method's (GET's) service reads through a read-only unit of work, which holds no
# connection and so has nothing to give back: a plain dependency, which FastAPI solves for
# less than a generator's exit costs it (docs/performance.md).
async def get_user_reader(request: Request) -> UserService:
    services = services_of(request)
    return services.user_service(services.unit_of_work(read_only=True))


async def get_todo_reader(request: Request) -> TodoService:
    services = services_of(request)
    return services.todo_service(services.unit_of_work(read_only=True))


async def get_project_reader(request: Request) -> ProjectService:
    services = services_of(request)
    return services.project_service(services.unit_of_work(read_only=True))


async def get_invitation_reader(request: Request) -> InvitationService:
    services = services_of(request)
    return services.invitation_service(services.unit_of_work(read_only=True))


async def get_activity_reader(request: Request) -> ActivityService:
    services = services_of(request)
    return services.activity_service(services.unit_of_work(read_only=True))


async def get_sync_reader(request: Request) -> SyncService:
    services = services_of(request)
    return services.sync_service(services.unit_of_work(read_only=True))


async def get_webhook_reader(request: Request) -> WebhookService:
    services = services_of(request)
    return services.webhook_service(services.unit_of_work(read_only=True))


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
UserServiceDep = Annotated[UserService, Depends(get_user_service)]
TodoServiceDep = Annotated[TodoService, Depends(get_todo_service)]
UserReaderDep = Annotated[UserService, Depends(get_user_reader)]
TodoReaderDep = Annotated[TodoService, Depends(get_todo_reader)]
ProjectServiceDep = Annotated[ProjectService, Depends(get_project_service)]
ProjectReaderDep = Annotated[ProjectService, Depends(get_project_reader)]
InvitationServiceDep = Annotated[InvitationService, Depends(get_invitation_service)]
InvitationReaderDep = Annotated[InvitationService, Depends(get_invitation_reader)]
ActivityReaderDep = Annotated[ActivityService, Depends(get_activity_reader)]
SyncReaderDep = Annotated[SyncService, Depends(get_sync_reader)]
WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]
WebhookReaderDep = Annotated[WebhookService, Depends(get_webhook_reader)]


def bearer_token(request: Request) -> str | None:
    """The request's Bearer token (RFC 6750 §2.1), if it sent one. Two Authorization headers are
    a 400, since which one another component (a proxy, a cache, a log) took is anyone's guess.
    Read here rather than by FastAPI's security classes: as dependencies they cost every request
    a node of the graph each; docs.py documents the two schemes this reads."""
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise HTTPProblem(
            400,
            "invalid_request",
            "Send one Authorization header, not several.",
            # RFC 6750 §3.1: a request that repeats a parameter is `invalid_request`.
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    return _bearer(values[0]) if values else None


def _bearer(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _required(token: str | None) -> str:
    if not token:
        raise HTTPProblem(401, "not_authenticated", "Not authenticated: send a Bearer token.")
    return token


async def get_bearer_token(request: Request) -> str:
    return _required(bearer_token(request))


BearerToken = Annotated[str, Depends(get_bearer_token)]


async def _authenticate(request: Request, token: str | None, uow: UnitOfWork) -> Actor:
    """The caller, counted against the default rate limit: per user, in the access check's
    own round trip; a missing or bad token per IP, before it is refused."""
    services = services_of(request)
    if token is None or _user_id(services, token) is None:
        await _count_default(request, services, f"ip:{client_ip(request)}")
        return await services.auth_service(uow).authenticate(_required(token))  # refuses it
    counted = services.rate_limiter.counted_access("default")
    if counted is None:  # limits are off
        return await services.auth_service(uow).authenticate(token)
    actor = await services.auth_service(uow, revocations=counted).authenticate(token)
    state = counted.settle()
    if state is not None:
        request.state.rate_limit = state
    return actor


async def get_current_actor(request: Request) -> Actor:
    # A read-only unit of work of its own: it reaches the database only when the caller's stamp
    # changed, and then for one read.
    uow = services_of(request).unit_of_work(read_only=True)
    actor = await _authenticate(request, bearer_token(request), uow)
    context = request_context.get()
    if context is not None:  # the access line and the audit trail name who asked
        context.actor_id = actor.user_id
    return actor


CurrentActor = Annotated[Actor, Depends(get_current_actor)]


async def open_event_stream(
    request: Request, actor: CurrentActor
) -> AsyncIterator[EventStream | None]:
    """The caller's event stream, opened before the response starts, so an unusable token
    (400 / 410) or one stream too many (429) is a problem+json answer, not a broken stream;
    its place is given back once the response is over. Resumes from `Last-Event-ID` (what a
    reconnecting EventSource sends), else from `?token=`."""
    services = services_of(request)
    access_token = _required(bearer_token(request))
    resume = request.headers.get("last-event-id") or request.query_params.get("token") or None
    if resume is not None and len(resume) > SYNC_TOKEN_MAX_LENGTH:
        raise InvalidSyncToken
    if request.scope.get(HEAD_AS_GET):  # a HEAD: the GET's answer and headers, nothing held
        await services.event_service.probe(actor, token=resume)
        yield None
        return
    stream = await services.event_service.open(
        actor,
        token=resume,
        access_token=access_token,
        expires_at=services.tokens.decode_access(access_token).expires_at,
    )
    try:
        yield stream
    finally:
        await stream.close()


EventStreamDep = Annotated[EventStream | None, Depends(open_event_stream)]


def _keep(request: Request, state: RateLimitState | None) -> None:
    """The headers show the limit closest to refusing: the one with the fewest left."""
    if state is None:
        return
    kept = getattr(request.state, "rate_limit", None)
    if kept is None or state.remaining <= kept.remaining:
        request.state.rate_limit = state


def rate_limit(name: str) -> Any:
    """A named limit per client IP."""

    async def check(request: Request) -> None:
        _keep(request, await services_of(request).rate_limiter.hit(name, client_ip(request)))

    return Depends(check)


async def login_rate_limits(request: Request, email: str) -> None:
    """RATE_LIMIT_LOGIN_IP per client IP, then RATE_LIMIT_LOGIN per IP and email. Given the
    email the login itself checks, parsed once, so no spelling of the request (a media type's
    case, a `+json` type) can count it under another key."""
    limiter, ip = services_of(request).rate_limiter, client_ip(request)
    _keep(request, await limiter.hit("login_ip", ip))
    _keep(request, await limiter.hit("login", ip, normalise_email(email)))


async def _json_login(request: Request, body: LoginRequest) -> LoginRequest:
    await login_rate_limits(request, body.email)
    return body


async def _form_login(
    request: Request,
    username: Annotated[
        str,
        Form(
            max_length=320,
            pattern=NO_NUL,
            description="The account's email.",
            examples=["ada@example.com"],
        ),
    ],
    password: Annotated[
        str, Form(max_length=PASSWORD_MAX_LENGTH, examples=["correct horse battery"])
    ],
) -> LoginRequest:
    await login_rate_limits(request, username)
    return LoginRequest.model_construct(email=username, password=password)


async def _me_update(request: Request, body: MeUpdate, actor: CurrentActor) -> MeUpdate:
    """An email change is counted under RATE_LIMIT_LOGIN, per account: it checks a password,
    and its 409 tells whether an email is taken, so neither is open to probing at the default
    rate. Counted before the password is checked, right or wrong."""
    if body.email is not None:
        limiter = services_of(request).rate_limiter
        _keep(request, await limiter.hit("login", f"user:{actor.user_id}"))
    return body


MeUpdateBody = Annotated[MeUpdate, Depends(_me_update)]

# A login's credentials, from a JSON body or the OAuth2 password form, after its rate limits.
JsonLogin = Annotated[LoginRequest, Depends(_json_login)]
FormLogin = Annotated[LoginRequest, Depends(_form_login)]


async def default_rate_limit(request: Request, services: Services) -> None:
    """RATE_LIMIT_DEFAULT per user when a valid token is sent, else per client IP. Routes that
    authenticate count it there; the others take `DefaultRateLimit`."""
    user_id = _user_id(services, _bearer(request.headers.get("authorization", "")))
    if user_id is None:
        await _count_default(request, services, f"ip:{client_ip(request)}")
        return
    state = await services.rate_limiter.hit_user("default", user_id)
    if state is not None:
        request.state.rate_limit = state


async def _count_default(request: Request, services: Services, identity: str) -> None:
    state = await services.rate_limiter.hit("default", identity)
    if state is not None:
        request.state.rate_limit = state


def _user_id(services: Services, token: str | None) -> UUID | None:
    """Whose token this is, if it is a valid one (a bad token is limited per IP)."""
    if token:
        with suppress(InvalidToken):
            return services.tokens.decode_access(token).user_id
    return None


async def _default_rate_limit(request: Request) -> None:
    await default_rate_limit(request, services_of(request))


DefaultRateLimit = Depends(_default_rate_limit)


async def json_only(request: Request) -> None:
    """A body that is not JSON is a 415, not a confusing 422 about its parsed shape."""
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and not (media_type == "application/json" or media_type.endswith("+json")):
        raise HTTPProblem(415, "unsupported_media_type", "Send the body as application/json.")


JsonOnly = Depends(json_only)
