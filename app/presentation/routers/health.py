"""Liveness, readiness and Prometheus metrics."""

import asyncio
import hmac
import logging
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from app.presentation.deps import AdaptersDep
from app.presentation.errors import HTTPProblem
from app.presentation.schemas.common import problems

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/health", operation_id="health")
async def health() -> Health:
    """Liveness: 200 while the process serves."""
    return Health(status="ok")


@router.get(
    "/health/ready",
    operation_id="ready",
    responses={503: {"model": Readiness, "description": "A dependency is down; it is named."}},
)
async def ready(adapters: AdaptersDep) -> JSONResponse:
    """Readiness: the database and Redis (when configured) answer."""
    checks: dict[str, str] = {}
    for name, check in adapters.readiness.items():
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            checks[name] = "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    body = Readiness(status="ok" if healthy else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


@dataclass(frozen=True)
class MetricsAccess:
    """Who may scrape: the holders of `token` when there is one, else everyone or no one."""

    token: str | None
    open_without_token: bool

    def check(self, authorization: str) -> None:
        if self.token is None:
            if not self.open_without_token:  # not served at all, as if there were no route
                raise HTTPProblem(404, "not_found", "No such route.")
            return
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise HTTPProblem(401, "not_authenticated", "Send the metrics token as a Bearer token.")
        if not hmac.compare_digest(presented.encode(), self.token.encode()):
            raise HTTPProblem(401, "invalid_token", "This is not the metrics token.")


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
    """Request counts and latency histograms by route template and status. With
    `METRICS_TOKEN` set, send it as `Authorization: Bearer <token>`; in production without
    one, metrics are not served (404)."""
    access: MetricsAccess = request.app.state.metrics_access
    access.check(request.headers.get("authorization", ""))
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
