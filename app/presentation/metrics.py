"""Who may scrape /metrics, and the gauges read at each scrape."""

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge

from app.domain.webhooks import DeliveryStatus
from app.presentation.errors import HTTPProblem


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


class JobMetrics:
    """The job engine's and the webhooks' state, as gauges read fresh at each scrape (from the
    database, so they cover every worker process): jobs queued and running, deliveries by
    status, and the retry lag (how long the most overdue delivery has been due)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Gauge(
            "todo_jobs", "Jobs in the job engine, by status.", ["status"], registry=registry
        )
        self.deliveries = Gauge(
            "todo_webhook_deliveries",
            "Webhook deliveries, by status.",
            ["status"],
            registry=registry,
        )
        self.retry_lag = Gauge(
            "todo_webhook_retry_lag_seconds",
            "How long the most overdue webhook delivery has been due (0: none overdue).",
            registry=registry,
        )

    def update(
        self,
        *,
        jobs: Mapping[str, int],
        deliveries: Mapping[str, int],
        oldest_due: datetime | None,
        now: datetime,
    ) -> None:
        for status in ("todo", "doing", "succeeded", "failed"):
            self.jobs.labels(status).set(jobs.get(status, 0))
        for status in DeliveryStatus:
            self.deliveries.labels(status.value).set(deliveries.get(status.value, 0))
        lag = 0.0 if oldest_due is None else max(0.0, (now - oldest_due).total_seconds())
        self.retry_lag.set(lag)
