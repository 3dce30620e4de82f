"""One RFC 9457 problem+json writer for every error: domain, validation, HTTP and unexpected."""

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.application.ports import ServiceUnavailable, StatementTimedOut
from app.domain import errors as domain
from app.presentation.routes import allowed_methods, parameter_locations, route_template

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Domain error → (status, stable code). The one table that knows both worlds.
DOMAIN_ERRORS: dict[type[domain.DomainError], tuple[int, str]] = {
    domain.WebhookUrlNotAllowed: (422, "webhook_url_not_allowed"),
    domain.InvalidField: (422, "validation_error"),
    domain.InvalidCursor: (400, "invalid_cursor"),
    domain.InvalidSyncToken: (400, "invalid_sync_token"),
    domain.SyncTokenExpired: (410, "sync_token_expired"),
    domain.TooManyStreams: (429, "rate_limited"),
    domain.InvalidCredentials: (401, "invalid_credentials"),
    domain.InvalidToken: (401, "invalid_token"),
    domain.TokenReused: (401, "token_reused"),
    domain.AccountDisabled: (403, "account_disabled"),
    domain.PermissionDenied: (403, "forbidden"),
    domain.TodoQuotaExceeded: (403, "todo_quota_exceeded"),
    domain.UserNotFound: (404, "user_not_found"),
    domain.TodoNotFound: (404, "todo_not_found"),
    domain.ProjectNotFound: (404, "project_not_found"),
    domain.MemberNotFound: (404, "member_not_found"),
    domain.InvitationNotFound: (404, "invitation_not_found"),
    domain.WebhookNotFound: (404, "webhook_not_found"),
    domain.InboxProtected: (409, "inbox_protected"),
    domain.OwnerRoleFixed: (409, "owner_role_fixed"),
    domain.OwnerCannotLeave: (409, "owner_cannot_leave"),
    domain.AlreadyMember: (409, "already_member"),
    domain.EmailTaken: (409, "email_taken"),
    domain.LastAdmin: (409, "last_admin"),
    domain.IdempotencyKeyInFlight: (409, "idempotency_key_in_flight"),
    domain.PreconditionFailed: (412, "precondition_failed"),
    domain.IdempotencyKeyReused: (422, "idempotency_key_reused"),
}

RETRY_STREAM_SECONDS = 5

HTTP_CODES = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class HTTPProblem(Exception):
    """An HTTP-only failure raised by presentation code (rate limits, preconditions)."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}


def problem(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = errors
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", _bearer_challenge(request))
    if request_id:
        headers["X-Request-ID"] = request_id
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _bearer_challenge(request: Request) -> str:
    """RFC 6750 §3: a request that sent a Bearer token learns it was refused (`invalid_token`);
    one that sent some other or an empty Authorization, that it was malformed
    (`invalid_request`); one that sent none, only the scheme."""
    authorization = request.headers.get("authorization")
    if authorization is None:
        return "Bearer"
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return 'Bearer error="invalid_token"'
    return 'Bearer error="invalid_request"'


def _field(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(domain.DomainError, exc)
    status, code = next(
        (entry for kind, entry in DOMAIN_ERRORS.items() if isinstance(exc, kind)),
        (400, "invalid_request"),
    )
    errors = None
    if isinstance(exc, domain.InvalidField):
        where = _declared_location(request, exc.field)
        errors = [{"field": f"{where}.{exc.field}", "message": exc.detail, "type": "value_error"}]
    # A 429 says when to try again (a stream closed frees its place at once).
    headers = {"Retry-After": str(RETRY_STREAM_SECONDS)} if status == 429 else None
    return problem(request, status, code, exc.detail, errors=errors, headers=headers)


def _declared_location(request: Request, name: str) -> str:
    """Where the matched route declares `name`, as FastAPI's own error `loc` says it: never
    guessed from what the client happened to send. What is not one of the route's path, query,
    header or cookie parameters is part of its body (FastAPI's rule too)."""
    template = route_template(request.scope.get("route"))
    if template is None:
        return "body"
    return parameter_locations(request.app, template, request.method).get(name, "body")


def _without_null_branches(errors: Sequence[Any]) -> list[Any]:
    """A field that may be left out but not sent as null (`X | SkipJsonSchema[None]`) is a
    union to pydantic, whose errors name each branch: `body.title.constrained-str` and
    `body.title.none: Input should be None`. Report them as the field's own."""
    unions = {
        tuple(error["loc"][:-1])
        for error in errors
        if error["type"] == "none_required" and error["loc"][-1:] == ("none",)
    }
    tidy = []
    for error in errors:
        loc = tuple(error["loc"])
        if loc[:-1] in unions and loc[-1] == "none":
            continue
        union = next((u for u in unions if loc[: len(u)] == u and len(loc) > len(u)), None)
        if union is not None:
            loc = union + loc[len(union) + 1 :]
        tidy.append({**error, "loc": loc})
    return tidy


def _json_position(document: object, offset: int) -> str:
    """`line L, column C` (both from 1) of a character offset in the JSON document."""
    text = document if isinstance(document, str) else ""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def invalid_json(request: Request, detail: str) -> JSONResponse:
    return problem(request, 400, "invalid_json", detail)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    found = _without_null_branches(exc.errors())
    syntax = next((error for error in found if error["type"] == "json_invalid"), None)
    if syntax is not None:
        # FastAPI names the failing character offset as if it were a field (`body.14`).
        where = _json_position(exc.body, int(syntax["loc"][-1]))
        reason = syntax.get("ctx", {}).get("error", "JSON decode error")
        return invalid_json(request, f"The body is not valid JSON: {reason} at {where}.")
    errors = [
        {
            "field": _field(error["loc"]),
            "message": "This field is not part of the request."
            if error["type"] == "extra_forbidden"
            else error["msg"].removeprefix("Value error, "),
            "type": "unknown_field" if error["type"] == "extra_forbidden" else error["type"],
        }
        for error in found
    ]
    fields = ", ".join(sorted({e["field"] for e in errors}))
    if all(error["type"] == "unknown_field" for error in errors):
        return problem(request, 422, "unknown_field", f"Unknown fields: {fields}.", errors=errors)
    return problem(request, 422, "validation_error", f"Invalid input: {fields}.", errors=errors)


def _allowed_methods(request: Request, fallback: str) -> str:
    """Every method the path answers. Starlette's own `Allow` names only the first route that
    matched the path, but FastAPI makes one route per method (RFC 9110 §15.5.6 wants them all)."""
    template = route_template(request.scope.get("route"))
    methods = allowed_methods(request.app, template) if template else frozenset()
    if not methods:
        return fallback
    if "GET" in methods:
        methods = methods | {"HEAD"}  # HeadAsGetMiddleware answers HEAD wherever GET is
    return ", ".join(sorted(methods))


def _serves(request: Request, path: str) -> bool:
    """Whether one of the app's routes matches `path` (for any method)."""
    scope = {**request.scope, "path": path}
    return any(route.matches(scope)[0] is not Match.NONE for route in request.app.routes)


def _no_such_route(request: Request) -> str:
    """A path with a trailing slash is not redirected (the redirect would be built from the
    Host header): the answer names the path without it, as a path, when a route serves that."""
    path = request.url.path
    if path != "/" and path.endswith("/") and _serves(request, path.rstrip("/")):
        return f"No such route; without the trailing slash: {path.rstrip('/')}"
    return "No such route."


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's answer to a body it cannot decode at all (not UTF-8): malformed JSON too.
        return invalid_json(request, "The body is not valid JSON: it is not UTF-8 text.")
    code = HTTP_CODES.get(
        exc.status_code, HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    )
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).description
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = _no_such_route(request)
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
    return problem(request, exc.status_code, code, detail, headers=headers)


async def _http_problem(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(HTTPProblem, exc)
    return problem(request, exc.status, exc.code, exc.detail, headers=exc.headers)


def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """For an exception nothing else handled; the edge middleware answers with it."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(request, 500, "internal_error", "An unexpected error occurred.")


def service_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The one 503: a backing service cannot answer (ServiceUnavailable from an adapter, or a
    database or Redis driver fault main.py routes here). The client may retry; the text names
    nothing internal."""
    log.warning(
        "backing service unavailable: %s",
        exc if isinstance(exc, ServiceUnavailable) else type(exc).__name__,
    )
    detail = (
        "The query took too long and was cancelled; try again shortly, or narrow it."
        if isinstance(exc, StatementTimedOut)
        else "A backing service is unavailable; try again shortly."
    )
    return problem(request, 503, "service_unavailable", detail, headers={"Retry-After": "5"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(domain.DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(HTTPProblem, _http_problem)
    app.add_exception_handler(ServiceUnavailable, service_unavailable)
    # Starlette runs this one outside every middleware; the edge catches first (see there),
    # so this answers only a fault in the middleware itself.
    app.add_exception_handler(Exception, unexpected_error)
