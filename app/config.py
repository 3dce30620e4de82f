"""Settings: every environment variable the service reads, validated once at start-up."""

import ipaddress
import logging
import os
import secrets
import sys
from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
# Vite's and Create React App's / Next.js's dev servers, the origins a frontend starts on.
LOCAL_FRONTEND_ORIGINS = (
    "http://localhost:5173",
    "http://127.0.0.1:5173",
    "http://localhost:3000",
    "http://127.0.0.1:3000",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./todo.db"
    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster (database 0), whose other nodes are found
    # from it: the service uses redis-py's cluster client, and `limits`' cluster storage.
    redis_cluster: bool = False
    secret_key: SecretStr = Field(default=SecretStr(""), validate_default=True)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "todo-api"
    jwt_audience: str = "todo-api"
    access_token_expire_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_expire_days: int = Field(default=7, ge=1, le=365)
    # Unset: the usual local frontend dev servers in development, none elsewhere (allowed_origins).
    cors_origins: Annotated[list[str] | None, NoDecode] = None
    first_admin_email: str | None = None
    first_admin_password: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "console"
    rate_limit_enabled: bool = True
    rate_limit_login: str = "5/minute"
    rate_limit_login_ip: str = "30/minute"
    rate_limit_register: str = "10/hour"
    rate_limit_refresh: str = "30/minute"
    rate_limit_default: str = "600/minute"
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # A request with more header fields than this is a 431. The head's bytes and the time a
    # request may take to arrive are the reverse proxy's to bound (deploy/nginx.conf).
    max_headers: int = Field(default=100, ge=10)
    # Peers whose X-Forwarded-For/-Proto are believed: addresses or networks. None by default,
    # so a client can never choose the address its rate limits are counted against.
    trusted_proxies: Annotated[list[str], NoDecode] = []
    # Bearer token for /metrics; without one, /metrics is open except in production (404).
    metrics_token: SecretStr | None = None
    db_pool_size: int = Field(default=20, ge=1)
    # PostgreSQL cancels a statement running longer than this (0: never), which the client
    # gets as a 503: no request holds a pooled connection for long.
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    # Todos a user may own, live and in the trash together; a create past it is a 403.
    max_todos_per_user: int = Field(default=10_000, ge=1)
    # How long a project invitation's token may be accepted.
    invitation_expire_days: int = Field(default=7, ge=1, le=365)
    # A sync token (or live event id) older than this is refused (410): start with a full sync.
    sync_retention_days: int = Field(default=30, ge=1, le=3650)
    # A todo in the trash longer than this is deleted for good by the purge job (todo.purged).
    trash_retention_days: int = Field(default=30, ge=1, le=3650)
    # Live-event streams one user may have open at once, across instances; one more is a 429.
    sse_max_streams_per_user: int = Field(default=5, ge=1, le=1000)
    # Webhooks: how long a receiver has to answer, the delays (seconds) before each retry,
    # whether private/loopback targets may be called (unset: only outside production), and how
    # many attempts to one webhook a worker makes at once.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_schedule: Annotated[tuple[int, ...], NoDecode] = (
        5,
        300,
        1800,
        7200,
        18000,
        36000,
    )
    webhook_allow_private_targets: bool | None = None
    webhook_concurrency_per_webhook: int = Field(default=4, ge=1, le=100)
    # A settled delivery (succeeded or failed) is kept in its webhook's log this long after
    # its event, then deleted by the clean-up job; one still being retried is always kept.
    webhook_delivery_retention_days: int = Field(default=30, ge=1, le=3650)
    # Jobs (webhook deliveries, the scheduled clean-ups): run by a worker process
    # (scripts/worker) with this many at once; JOBS_IN_PROCESS runs them in the API's own
    # process instead (unset: on the embedded default only, where no worker runs).
    worker_concurrency: int = Field(default=10, ge=1, le=200)
    jobs_in_process: bool | None = None
    # Argon2id cost; the defaults are OWASP's recommendation (19 MiB, 2 passes).
    password_hash_time_cost: int = Field(default=2, ge=1)
    password_hash_memory_kib: int = Field(default=19 * 1024, ge=1024)
    # Hashes at once: half the cores, so a burst of logins never starves the other requests.
    password_hash_concurrency: int = Field(default=max(1, (os.cpu_count() or 2) // 2), ge=1)

    @property
    def allowed_origins(self) -> list[str]:
        """The origins CORS allows: CORS_ORIGINS when set (empty allows none); else the local
        frontend dev servers in development, and none in test or production."""
        if self.cors_origins is not None:
            return self.cors_origins
        return list(LOCAL_FRONTEND_ORIGINS) if self.environment == "development" else []

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                delays = tuple(int(part) for part in value.split(",") if part.strip())
            except ValueError:
                raise ValueError("not comma-separated seconds like '5,300,1800'") from None
            if any(delay < 0 for delay in delays):
                raise ValueError("delays are seconds, 0 or more")
            return delays
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [proxy.strip() for proxy in value.split(",") if proxy.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _ip_networks(cls, value: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(proxy, strict=False)) for proxy in value]
        except ValueError as exc:
            raise ValueError(f"not an IP address or network: {exc}") from None

    @field_validator("metrics_token")
    @classmethod
    def _no_empty_token(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value and value.get_secret_value() else None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "rate_limit_login",
        "rate_limit_login_ip",
        "rate_limit_register",
        "rate_limit_refresh",
        "rate_limit_default",
    )
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        try:
            parse_rate_limit(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '5/minute': {value!r}") from exc
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_node(cls, value: bool, info: ValidationInfo) -> bool:
        if not value:
            return value
        url = info.data.get("redis_url")
        if not url:
            raise ValueError("needs REDIS_URL, the address of one node of the cluster")
        if urlsplit(url).path.strip("/") not in ("", "0"):
            raise ValueError("a Redis Cluster has database 0 only: end REDIS_URL at the port")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the usual URL spellings and pin the async drivers we ship."""
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value.removeprefix(prefix)
        if value.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + value.removeprefix("sqlite://")
        if not value.startswith(("postgresql+psycopg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a postgresql:// or sqlite:// URL")
        return value

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        key = value.get_secret_value()
        if len(key.encode()) >= MIN_SECRET_BYTES:
            return value
        if key or info.data.get("environment") == "production":
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        # Development and tests get a random key: tokens die with the process, which is fine
        # there and loudly wrong anywhere else.
        log.warning("SECRET_KEY is not set: using a random key; tokens will not survive a restart")
        return SecretStr(secrets.token_urlsafe(48))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def runs_jobs_in_process(self) -> bool:
        return self.is_sqlite if self.jobs_in_process is None else self.jobs_in_process

    @property
    def allows_private_webhook_targets(self) -> bool:
        if self.webhook_allow_private_targets is not None:
            return self.webhook_allow_private_targets
        return self.environment != "production"


def load_settings() -> Settings:
    """Build the settings, or stop with one line per bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "configuration"
            print(f"Invalid configuration: {name}: {error['msg']}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
