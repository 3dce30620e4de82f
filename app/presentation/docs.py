"""The OpenAPI document, and Swagger UI 5 and ReDoc served with their assets from this
service: no CDN needed."""

from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.presentation.deps import API_PREFIX
from app.presentation.schemas.common import BEARER_SCHEMES
from app.presentation.schemas.sync import EventData, StreamEnd

EVENT_MODELS = (EventData, StreamEnd)

# The fastapi-offline package ships swagger-ui-dist 5 (renders OpenAPI 3.1) and ReDoc 2.
ASSETS = str(files("fastapi_offline") / "static")
ASSETS_URL = "/docs-assets"
DOCS_PATHS = ("/docs", "/redoc", ASSETS_URL)
REDOC_JS_URL = f"{ASSETS_URL}/redoc.standalone.js"
# ReDoc 2 draws its "API docs by Redocly" logo from this CDN address, with no option to turn it
# off (found by tests/browser). An empty `src` fetches nothing, and ReDoc drops the image.
REDOC_CDN_LOGO = '"https://cdn.redoc.ly/redoc/logo-mini.svg"'


# The assets change only with the fastapi-offline package: a browser keeps them a week and then
# revalidates (StaticFiles answers If-None-Match with a 304).
ASSETS_CACHE_CONTROL = "public, max-age=604800"


@cache
def offline_redoc_js() -> str:
    shipped = Path(ASSETS, "redoc.standalone.js").read_text("utf-8")
    return shipped.replace(REDOC_CDN_LOGO, '""')


class CachedAssets:
    """The assets' answers, with a long-lived Cache-Control."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Cache-Control"] = ASSETS_CACHE_CONTROL
            await send(message)

        await self.app(scope, receive, send_cached)


def assets_app() -> ASGIApp:
    """The docs' assets, compressed for clients that accept gzip (the Swagger UI bundle is
    over a megabyte) and cached."""
    return GZipMiddleware(CachedAssets(StaticFiles(directory=ASSETS)), minimum_size=1024)


PROBLEM = {"$ref": "#/components/schemas/Problem"}
# Errors any operation can answer, written by middleware and the catch-all handler.
SHARED_ERRORS = {"500": "Internal Server Error"}
BODY_ERRORS = {"413": "Content Too Large"}  # BodySizeLimitMiddleware, before any parsing


def with_problem_json(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI files a `responses=` model under the route's media type (application/json), but
    every error is written as application/problem+json: move the Problem schema there. Then
    declare the errors no router names, so clients and schemathesis know their shape too."""
    for operations in document["paths"].values():
        for operation in operations.values():
            responses = operation["responses"]
            shared = SHARED_ERRORS | (BODY_ERRORS if "requestBody" in operation else {})
            for status, description in shared.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/problem+json": {"schema": PROBLEM}},
                    },
                )
            for response in responses.values():
                content = response.get("content", {})
                if "application/problem+json" not in content:
                    continue
                # Under the route's own media type (JSON, or a stream's text/event-stream).
                for media_type in [m for m, c in content.items() if c.get("schema") == PROBLEM]:
                    if media_type != "application/problem+json":
                        content["application/problem+json"] = content.pop(media_type)
    return document


NULL = {"type": "null"}


def with_plain_optional_parameters(document: dict[str, Any]) -> dict[str, Any]:
    """A query or header parameter cannot be sent as null, only left out, which `required:
    false` already says; pydantic's `X | None` adds a null branch that Swagger UI shows as
    `string | (string | null)`. Keep the one real branch."""
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", ()):
                schema = parameter["schema"]
                branches = schema.get("anyOf", ())
                if len(branches) == 2 and NULL in branches and not parameter["required"]:
                    (real,) = (branch for branch in branches if branch != NULL)
                    rest = {key: value for key, value in schema.items() if key != "anyOf"}
                    parameter["schema"] = {**real, **rest}
    return document


# The two ways /docs and generated clients may send the one token deps.bearer_token reads;
# routes require them with schemas.common.TOKEN_REQUIRED.
OAUTH2, HTTP_BEARER = BEARER_SCHEMES
SECURITY_SCHEMES = {
    OAUTH2: {
        "type": "oauth2",
        "description": "Log in with email and password (the OAuth2 password flow) to get a token.",
        "flows": {"password": {"scopes": {}, "tokenUrl": f"{API_PREFIX}/auth/token"}},
    },
    # The same header as the plain bearer scheme: /docs then also takes a token pasted as is.
    HTTP_BEARER: {
        "type": "http",
        "description": "An access token from `login`, `token` or `refresh`.",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    },
}


def with_security_schemes(document: dict[str, Any]) -> dict[str, Any]:
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    return document


def with_event_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The live-event stream's `data:` shapes, which its `text/event-stream` response names
    (routers/events.py): no route returns them as JSON, so FastAPI would not list them."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in EVENT_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, nested in schema.pop("$defs", {}).items():
            schemas.setdefault(name, nested)
        schemas.setdefault(model.__name__, schema)
    return document


class DocumentedFastAPI(FastAPI):
    """FastAPI publishing the document shaped above: every error as problem+json, optional
    parameters without their null branch, the bearer token's security schemes, the live
    events' shapes."""

    def openapi(self) -> dict[str, Any]:
        document = with_problem_json(super().openapi())
        return with_event_schemas(with_security_schemes(with_plain_optional_parameters(document)))


def install_docs(app: FastAPI) -> None:
    # Before the mount, which would otherwise serve the file as shipped; through the same
    # compression and caching as the other assets.
    redoc_js = GZipMiddleware(
        CachedAssets(Response(offline_redoc_js(), media_type="text/javascript")),
        minimum_size=1024,
    )
    app.router.routes.append(Route(REDOC_JS_URL, redoc_js, include_in_schema=False))

    app.mount(ASSETS_URL, assets_app(), name="docs-assets")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — Swagger UI",
            oauth2_redirect_url=oauth2_redirect,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — ReDoc",
            redoc_js_url=REDOC_JS_URL,
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
