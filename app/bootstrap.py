"""The composition root: the adapters the service runs on, built from the settings, and the one
place each service is built from them. Nothing is built at import: `create_app()` (app/main.py)
and the CLI each make a Container."""

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from uuid import UUID

import procrastinate
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage, Storage
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis, RedisCluster
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.application.activity import ActivityService
from app.application.auth import ActorCache, AuthService, revocations_in_force
from app.application.events import EventService, LiveFeed
from app.application.invitations import InvitationService
from app.application.maintenance import MaintenanceService
from app.application.pagination import CursorCodec
from app.application.ports import (
    ActivitySignal,
    AuditTrail,
    RevocationList,
    StreamSlots,
    UnitOfWork,
)
from app.application.projects import ProjectService
from app.application.sync import SyncService, SyncTokens
from app.application.todos import TodoService
from app.application.users import UserService
from app.application.webhooks import WebhookDispatcher, WebhookSender, WebhookService
from app.config import Settings
from app.domain.users import Actor
from app.infrastructure.audit import LoggingAuditTrail
from app.infrastructure.clock import SystemClock
from app.infrastructure.db import create_engine
from app.infrastructure.driver_reads import DriverReads
from app.infrastructure.jobs import ProcrastinateJobQueue, job_app
from app.infrastructure.live import (
    InMemoryStreamSlots,
    InProcessActivitySignal,
    RedisActivitySignal,
    RedisStreamSlots,
)
from app.infrastructure.passwords import common_passwords
from app.infrastructure.redis import InMemoryRevocationList, RedisRevocationList
from app.infrastructure.security import Argon2PasswordHasher, JwtTokenIssuer
from app.infrastructure.uow import SqlAlchemyUnitOfWork
from app.infrastructure.webhook_http import HttpWebhookTransport
from app.presentation.metrics import JobMetrics, MetricsAccess
from app.presentation.rate_limit import CountingRevocationList, RateLimiter
from app.presentation.routers.events import event_data

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the SDK is imported only when tracing is on (app/tracing)
    from opentelemetry.sdk.trace import TracerProvider


class Container:
    """Everything the service runs on, each adapter built on first use and then kept: the API's
    start-up builds them all (`build`), the CLI only what its command needs. The request
    dependencies (app/presentation/deps.py) take the services from here."""

    def __init__(
        self, settings: Settings, *, tracer_provider: "TracerProvider | None" = None
    ) -> None:
        self.settings = settings
        self.tracer_provider = tracer_provider
        self.metrics_registry = CollectorRegistry()
        self.metrics_access = MetricsAccess(
            token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
            open_without_token=settings.environment != "production",
        )

    def build(self) -> None:
        """Every adapter, now: start-up pays for them (and stops on a broken one), not the
        first request that needs one."""
        for name, member in vars(Container).items():
            if isinstance(member, cached_property):
                getattr(self, name)

    async def aclose(self) -> None:
        """Closes the pools that were opened (the CLI's container never opens Redis's)."""
        built = self.__dict__  # where cached_property keeps what it built
        if "engine" in built:
            await self.engine.dispose()
        if "live_feed" in built:
            await self.live_feed.aclose()
        if built.get("redis") is not None:
            await built["redis"].aclose()
        if "webhook_transport" in built:
            await self.webhook_transport.aclose()

    # The services, on the caller's unit of work: their argument lists are written only here.

    def auth_service(
        self, uow: UnitOfWork, *, revocations: RevocationList | None = None
    ) -> AuthService:
        return AuthService(
            uow,
            hasher=self.hasher,
            tokens=self.tokens,
            revocations=revocations or self.revocations,
            actors=self.actors,
            clock=self.clock,
            common_passwords=self.common_passwords,
            audit=self.audit,
        )

    def user_service(self, uow: UnitOfWork) -> UserService:
        return UserService(
            uow,
            hasher=self.hasher,
            revocations=self.revocations,
            clock=self.clock,
            cursors=self.cursors,
            common_passwords=self.common_passwords,
            access_ttl=self.tokens.access_ttl,
            audit=self.audit,
        )

    def todo_service(self, uow: UnitOfWork) -> TodoService:
        return TodoService(
            uow,
            clock=self.clock,
            cursors=self.cursors,
            audit=self.audit,
            max_todos_per_user=self.settings.max_todos_per_user,
        )

    def project_service(self, uow: UnitOfWork) -> ProjectService:
        return ProjectService(uow, clock=self.clock, cursors=self.cursors)

    def invitation_service(self, uow: UnitOfWork) -> InvitationService:
        return InvitationService(
            uow,
            clock=self.clock,
            cursors=self.cursors,
            ttl=timedelta(days=self.settings.invitation_expire_days),
        )

    def activity_service(self, uow: UnitOfWork) -> ActivityService:
        return ActivityService(uow, cursors=self.cursors)

    def sync_service(self, uow: UnitOfWork) -> SyncService:
        return SyncService(uow, clock=self.clock, tokens=self.sync_tokens)

    def webhook_service(self, uow: UnitOfWork) -> WebhookService:
        return WebhookService(
            uow,
            clock=self.clock,
            cursors=self.cursors,
            transport=self.webhook_transport,
            jobs=self.job_queue,
        )

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        if read_only:
            return SqlAlchemyUnitOfWork(self.engine, read_only=True, reads=self.driver_reads)
        # A write's committed activity wakes the live-event feeds (application/events.py).
        return SqlAlchemyUnitOfWork(
            self.engine, reads=self.driver_reads, committed=self.activity_signal.announce
        )

    async def refresh_job_metrics(self) -> None:
        try:
            async with self.unit_of_work(read_only=True) as uow:
                deliveries = await uow.deliveries.counts()
                oldest_due = await uow.deliveries.oldest_due()
            jobs = await self.job_queue.counts()
        except Exception:  # the request metrics are still worth serving
            log.warning("the job metrics could not be read now", exc_info=True)
            return
        self.job_metrics.update(
            jobs=jobs, deliveries=deliveries, oldest_due=oldest_due, now=self.clock.now()
        )

    async def authenticate(self, access_token: str) -> Actor:
        """The caller behind an access token, as a request's edge checks it (streams check
        theirs again as they run)."""
        return await self.auth_service(self.unit_of_work(read_only=True)).authenticate(access_token)

    # The adapters.

    @cached_property
    def engine(self) -> AsyncEngine:
        return create_engine(
            self.settings.database_url,
            pool_size=self.settings.db_pool_size,
            autocommit=True,
            statement_timeout_ms=self.settings.db_statement_timeout_ms,
            # Only the driver's path keeps the statements that must be planned per run from
            # being prepared: it is the path unless tracing is on (driver_reads below).
            reused_plans=self.tracer_provider is None,
        )

    @cached_property
    def driver_reads(self) -> DriverReads | None:
        """Read-only units of work read through psycopg itself on PostgreSQL, except while
        tracing: its SQL spans come from SQLAlchemy's execute events, which then see every
        statement because every statement goes through SQLAlchemy's Connection."""
        engine = self.engine
        if self.tracer_provider is not None or engine.dialect.driver != "psycopg":
            return None
        return DriverReads(engine, pool_size=self.settings.db_pool_size)

    @cached_property
    def redis(self) -> Redis | RedisCluster | None:
        url = self.settings.redis_url
        if not url:
            return None
        if self.settings.redis_cluster:  # the URL names one node; the others are found from it
            return RedisCluster.from_url(
                url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
            )
        return Redis.from_url(
            url,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=30,
            retry_on_timeout=True,
        )

    @cached_property
    def tokens(self) -> JwtTokenIssuer:
        settings = self.settings
        return JwtTokenIssuer(
            secret=settings.secret_key.get_secret_value(),
            algorithm=settings.jwt_algorithm,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_ttl=timedelta(minutes=settings.access_token_expire_minutes),
            refresh_ttl=timedelta(days=settings.refresh_token_expire_days),
        )

    @cached_property
    def hasher(self) -> Argon2PasswordHasher:
        return Argon2PasswordHasher(
            time_cost=self.settings.password_hash_time_cost,
            memory_kib=self.settings.password_hash_memory_kib,
            concurrency=self.settings.password_hash_concurrency,
        )

    @cached_property
    def revocations(self) -> CountingRevocationList:
        """The revocation list; the default rate limit's per-user counters live there too."""

        async def on_record(user_id: UUID) -> dict[UUID, timedelta]:
            async with self.unit_of_work(read_only=True) as uow:
                return await revocations_in_force(
                    uow, user_id, access_ttl=self.tokens.access_ttl, now=self.clock.now()
                )

        if self.redis is not None:
            return RedisRevocationList(self.redis, on_record)
        return InMemoryRevocationList(on_record)

    @cached_property
    def sync_tokens(self) -> SyncTokens:
        return SyncTokens(
            self.cursors,
            clock=self.clock,
            retention=timedelta(days=self.settings.sync_retention_days),
        )

    @cached_property
    def activity_signal(self) -> ActivitySignal:
        """Wake-ups that activity was committed: Redis pub/sub across instances, else in
        process (docs/performance.md, Live events, says why pub/sub)."""
        if self.redis is not None:
            return RedisActivitySignal(self.redis)
        return InProcessActivitySignal()

    @cached_property
    def stream_slots(self) -> StreamSlots:
        if self.redis is not None:
            return RedisStreamSlots(self.redis)
        return InMemoryStreamSlots()

    @cached_property
    def live_feed(self) -> LiveFeed:
        return LiveFeed(lambda: self.unit_of_work(read_only=True), self.activity_signal)

    @cached_property
    def event_service(self) -> EventService:
        return EventService(
            unit_of_work=lambda: self.unit_of_work(read_only=True),
            feed=self.live_feed,
            tokens=self.sync_tokens,
            slots=self.stream_slots,
            authenticate=self.authenticate,
            now=self.clock.now,
            max_streams=self.settings.sse_max_streams_per_user,
        )

    @cached_property
    def job_metrics(self) -> JobMetrics:
        return JobMetrics(self.metrics_registry)

    @cached_property
    def jobs(self) -> procrastinate.App:
        """The job engine (infrastructure/jobs.py); its tasks are app/jobs.py's."""
        return job_app(self.settings.database_url)

    @cached_property
    def job_queue(self) -> ProcrastinateJobQueue:
        return ProcrastinateJobQueue(self.jobs)

    @cached_property
    def webhook_transport(self) -> HttpWebhookTransport:
        return HttpWebhookTransport(
            timeout_seconds=self.settings.webhook_timeout_seconds,
            allow_private=self.settings.allows_private_webhook_targets,
        )

    @cached_property
    def webhook_dispatcher(self) -> WebhookDispatcher:
        return WebhookDispatcher(
            self.unit_of_work, clock=self.clock, jobs=self.job_queue, render=event_data
        )

    @cached_property
    def webhook_sender(self) -> WebhookSender:
        return WebhookSender(
            self.unit_of_work,
            clock=self.clock,
            transport=self.webhook_transport,
            jobs=self.job_queue,
            schedule=self.settings.webhook_retry_schedule,
            per_webhook=self.settings.webhook_concurrency_per_webhook,
            # Longer than any attempt can take: a lease that lapses means its attempt died.
            lease=timedelta(seconds=self.settings.webhook_timeout_seconds + 30),
        )

    @cached_property
    def maintenance_service(self) -> MaintenanceService:
        """The scheduled jobs' work; each batch takes a writing unit of work of its own, so its
        committed entries wake the live-event feeds like a request's."""
        return MaintenanceService(
            self.unit_of_work,
            clock=self.clock,
            trash_retention=timedelta(days=self.settings.trash_retention_days),
            sync_retention=timedelta(days=self.settings.sync_retention_days),
            delivery_retention=timedelta(days=self.settings.webhook_delivery_retention_days),
        )

    @cached_property
    def actors(self) -> ActorCache:
        return ActorCache()

    @cached_property
    def audit(self) -> AuditTrail:
        return LoggingAuditTrail()

    @cached_property
    def clock(self) -> SystemClock:
        return SystemClock()

    @cached_property
    def cursors(self) -> CursorCodec:
        return CursorCodec(self.settings.secret_key.get_secret_value().encode())

    @cached_property
    def common_passwords(self) -> frozenset[str]:
        return common_passwords()

    @cached_property
    def rate_limits(self) -> Storage:
        """The rate limiter's counters (but the per-user ones: see `revocations`)."""
        url = self.settings.redis_url
        if not url:
            return MemoryStorage()
        if self.settings.redis_cluster:
            node = urlsplit(url)
            return RedisClusterStorage(
                f"async+redis+cluster://{node.netloc}",
                implementation="redispy",
                socket_timeout=1,
                socket_connect_timeout=1,
                ssl=node.scheme == "rediss",
            )
        return RedisStorage(
            "async+" + url, implementation="redispy", socket_timeout=1, socket_connect_timeout=1
        )

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        settings = self.settings
        return RateLimiter(
            self.rate_limits,
            self.revocations,
            enabled=settings.rate_limit_enabled,
            limits={
                "login": settings.rate_limit_login,
                "login_ip": settings.rate_limit_login_ip,
                "register": settings.rate_limit_register,
                "refresh": settings.rate_limit_refresh,
                "default": settings.rate_limit_default,
            },
        )

    @cached_property
    def readiness(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """What /health/ready checks: the database, and Redis when configured."""
        engine, redis = self.engine, self.redis

        async def database_ready() -> None:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        checks: dict[str, Callable[[], Awaitable[None]]] = {"database": database_ready}
        if redis is not None:

            async def redis_ready() -> None:
                await redis.ping()

            checks["redis"] = redis_ready
        return checks
