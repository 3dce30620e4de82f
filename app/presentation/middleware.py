"""Pure ASGI middleware: the edge every response passes (request id, Host check, access log,
metrics, security, caching and rate-limit headers, the last word on unexpected errors), HEAD
answered as GET, the body size limit, and CORS whose refusals are problems like every other
error."""

import logging
import random
import re
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import RequestContext, request_context
from app.presentation.errors import problem, unexpected_error
from app.presentation.rate_limit import RateLimitState
from app.presentation.routes import route_template

log = logging.getLogger("app.access")

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


API_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# Swagger UI and ReDoc are served from here and run inline bootstrap scripts.
DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'"
)
HSTS = (b"strict-transport-security", b"max-age=63072000")
# Tokens are never stored by any cache (RFC 6749 §5.1). Every other API answer depends on
# who asks: a browser may keep it but must revalidate it (ETag, If-None-Match → 304), and a
# shared cache never stores it.
NO_STORE = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))
PRIVATE = ((b"cache-control", b"private, no-cache"), (b"vary", b"Authorization"))


class EdgeMiddleware:
    """Everything every response gets, in one layer (each layer costs every request):

    - a request id: a sane incoming X-Request-ID, else a new one, echoed on the response;
      with the client address, the request's context for every log and audit record;
    - a 400 for an HTTP/1.1 request without a Host header, or any request with several
      (RFC 9112 §3.2): which one a proxy, a cache or a log took would be anyone's guess.
      HTTP/1.0 did not require Host, so a 1.0 request without one is served; nothing here
      builds a URL from Host anyway (no redirects, relative Locations);
    - a 431 for a request with more than `max_headers` header fields (RFC 6585 §5), before
      anything reads them. The head's size is bounded before it is read, by the reverse
      proxy (deploy/nginx.conf): nginx bounds a head's bytes, not its number of fields;
    - one access-log line: method, path (no query, no headers: no token reaches the log),
      status and duration, with the client address and the authenticated actor's id;
    - request counts and latency by route template (never the raw path: ids would explode
      the label set; paths no route serves share one label);
    - the security headers, with a CSP that lets the docs pages run;
    - the caching headers: `no-store` on token responses, `private, no-cache` on the rest of
      the API (`api_prefix`);
    - the rate-limit headers a limit dependency left on the request, which also covers
      responses a handler builds itself (204, 304);
    - a 500 problem for an exception nothing handled. Starlette's own last resort sits
      outside every middleware, so its answers would lack everything above.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: CollectorRegistry,
        docs_paths: Iterable[str],
        assets_path: str,
        hsts: bool,
        api_prefix: str,
        token_paths: Iterable[str],
        max_headers: int,
    ) -> None:
        self.app = app
        self.max_headers = max_headers
        self.docs_paths = tuple(docs_paths)
        self.assets_path = assets_path
        self.hsts = hsts
        self.api_prefix = api_prefix
        self.token_paths = frozenset(token_paths)
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
        )
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or _new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        client = scope.get("client")
        context = RequestContext(request_id, client[0] if client else None)
        token = request_context.set(context)
        path = scope["path"]
        is_docs = path.startswith(self.docs_paths)
        caching = (
            NO_STORE
            if path in self.token_paths
            else PRIVATE
            if path.startswith(self.api_prefix)
            else ()
        )
        status = 0  # until the response starts

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                present = {name.lower() for name, _ in headers}
                if b"x-request-id" not in present:
                    headers.append((b"x-request-id", request_id.encode()))
                headers.extend(h for h in API_HEADERS if h[0] not in present)
                if is_docs:
                    headers[:] = [h for h in headers if h[0].lower() != b"content-security-policy"]
                    headers.append((b"content-security-policy", DOCS_CSP))
                elif b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", API_CSP))
                if self.hsts and HSTS[0] not in present:
                    headers.append(HSTS)
                # A second Vary line (after CORS' `Vary: Origin`) adds to it (RFC 9110 §5.3).
                headers.extend(h for h in caching if h[0] == b"vary" or h[0] not in present)
                limit = state.get("rate_limit")
                if isinstance(limit, RateLimitState):
                    headers.extend(h for h in limit.raw_headers() if h[0] not in present)
            await send(message)

        try:
            if len(scope["headers"]) > self.max_headers:
                detail = f"Send at most {self.max_headers} header fields."
                await problem(Request(scope), 431, "headers_too_large", detail)(
                    scope, receive, send_with_headers
                )
            elif (refusal := _host_refusal(scope)) is not None:
                await problem(Request(scope), 400, "invalid_request", refusal)(
                    scope, receive, send_with_headers
                )
            else:
                await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if status:  # too late for another answer: the server closes the connection
                raise
            await unexpected_error(Request(scope), exc)(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            status = status or 500
            self._observe(scope["method"], self._route_label(scope), status, elapsed)
            if log.isEnabledFor(logging.INFO):
                _access_line(scope["method"], path, status, elapsed, context)
            request_context.reset(token)

    def _route_label(self, scope: Scope) -> str:
        """The documented template of the route that served the request (the one Starlette's
        router recorded), whatever ids its path carries."""
        route = scope.get("route")
        template = route_template(route)
        if template is not None:
            return template
        if isinstance(route, Route):  # the docs' pages, which the OpenAPI document leaves out
            return route.path
        path: str = scope["path"]
        if path.startswith(self.assets_path + "/"):  # the docs' assets: one series for all
            return self.assets_path + "/{path}"
        return "unmatched"

    def _observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        series[0].inc()
        series[1].observe(elapsed)


def _access_line(
    method: str, path: str, status: int, elapsed: float, context: RequestContext
) -> None:
    """The request's access line. Its record is made and handled directly (`makeRecord`,
    `handle`), as `Logger.info` would after looking up the caller, which no access line
    prints and every request would pay for."""
    record = log.makeRecord(
        log.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %s %.1fms",
        (method, path, status, elapsed * 1000),
        None,
        extra={"client": context.client, "actor_id": context.actor_id},
    )
    log.handle(record)


def _host_refusal(scope: Scope) -> str | None:
    """Why the request's Host header(s) cannot be served, if they cannot."""
    count = sum(1 for name, _ in scope["headers"] if name == b"host")
    if count > 1:
        return "Send one Host header, not several."
    if count == 0 and scope.get("http_version") == "1.1":
        return "An HTTP/1.1 request must carry a Host header."
    return None


def _new_request_id() -> str:
    # A correlation id, not a secret: 128 random bits without a system call per request.
    return f"{random.getrandbits(128):032x}"


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_REQUEST_ID.fullmatch(text) else None
    return None


HEAD_AS_GET = "todo_api.head_as_get"
"""Set in the scope of a HEAD run as a GET: a route that would stream forever (live events)
answers its headers and ends instead."""


class HeadAsGetMiddleware:
    """HEAD is answered wherever GET is (RFC 9110 §9.3.2): the request runs as a GET, and its
    response goes out with the same status and headers (Content-Length included) but no body.
    The application, its routes and its OpenAPI document know only GET."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        finished = False

        async def send_head(message: Message) -> None:
            nonlocal finished
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not finished:
                # One empty body message ends the response at the GET's first chunk, whatever
                # the GET streams after it.
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        # A copy: the server keeps its own scope's HEAD, and sends no body bytes for it either.
        as_get = {**scope, "method": "GET", HEAD_AS_GET: True}
        try:
            await self.app(as_get, receive, send_head)
        finally:
            if "route" in as_get:  # the route that served it, for the edge's metrics label
                scope["route"] = as_get["route"]


class BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so FastAPI's body reader lets it through as a 413 (not a 400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body is larger than {max_bytes} bytes.")


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with 413 before anything parses them: at once when
    Content-Length says so, else as soon as the streamed bytes pass the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _body_headers(scope)
        if declared is None and not chunked:  # no body at all: nothing to count
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(request, scope, receive, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await self._refuse(request, scope, receive, send)

    async def _refuse(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            request,
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_bytes} bytes.",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _body_headers(scope: Scope) -> tuple[str | None, bool]:
    """The declared Content-Length, and whether the body comes chunked."""
    length, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value.decode("latin-1")
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, whose refused preflight (plain text) becomes a problem+json."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(name == b"origin" for name, _ in scope["headers"]):
            # Not a cross-origin request: nothing to add, and no wrapper around its answer.
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code == 400:
                    response = _refused_preflight(Request(scope), response)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _refused_preflight(request: Request, refusal: Response) -> Response:
    refused = bytes(refusal.body).decode().removeprefix("Disallowed CORS ")  # what it names
    headers = {
        name: value
        for name, value in refusal.headers.items()
        if name not in ("content-type", "content-length")
    }
    detail = f"Cross-origin request refused: {refused} not allowed."
    return problem(request, 400, "cors_refused", detail, headers=headers)
