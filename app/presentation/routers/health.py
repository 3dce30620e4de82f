"""Liveness, readiness and Prometheus metrics."""

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.routing import Match, Route
from starlette.types import Scope

from app.presentation.deps import ServicesDep, services_of
from app.presentation.schemas.common import problems

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


# The liveness answer never changes: its body is made once.
_ALIVE = Health(status="ok").model_dump_json().encode()


@router.get("/health", operation_id="health", response_model=Health)
async def health() -> Response:
    """Liveness: 200 while the process serves."""
    return Response(_ALIVE, media_type="application/json")


class PlainRoute(Route):
    """A Starlette route that records itself as the scope's route, as FastAPI's routes do (the
    edge's metrics label a request by it)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


async def _alive(request: Request) -> Response:
    return await health()


liveness = PlainRoute("/health", _alive, methods=["GET"], include_in_schema=False)
"""`/health` as a plain Starlette route, served ahead of the documented one above (which
gives the OpenAPI document its entry): a probe that load balancers send every few seconds
needs none of FastAPI's request handling (dependencies, validation, serialisation), which is
most of what answering it costs (docs/performance.md)."""


@router.get(
    "/health/ready",
    operation_id="ready",
    responses={503: {"model": Readiness, "description": "A dependency is down; it is named."}},
)
async def ready(services: ServicesDep) -> JSONResponse:
    """Readiness: the database and Redis (when configured) answer."""
    checks: dict[str, str] = {}
    for name, check in services.readiness.items():
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            checks[name] = "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    body = Readiness(status="ok" if healthy else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        **problems(401, 404),
    },
)
async def metrics(request: Request) -> Response:
    """Request counts and latency histograms by route template and status; jobs by status
    (`todo_jobs`), webhook deliveries by status and the retry lag. With
    `METRICS_TOKEN` set, send it as `Authorization: Bearer <token>`; in production without
    one, metrics are not served (404)."""
    services = services_of(request)
    services.metrics_access.check(request.headers.get("authorization", ""))
    await services.refresh_job_metrics()
    return Response(generate_latest(services.metrics_registry), media_type=CONTENT_TYPE_LATEST)
