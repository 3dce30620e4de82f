"""What the bench scripts share: the database, the seeded user, and the app's settings."""

import os
from pathlib import Path

from app.config import Settings
from app.domain.todos import SortKey, parse_sort

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/todo_bench"

BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "keyset-bench-Password-7"  # noqa: S105 (a bench fixture, not a secret)
SECRET_KEY = "bench-secret-key-that-is-long-enough-0123456789"  # noqa: S105

DEEP_ROWS = 50_000
"""The deep page starts after this many rows of the list."""
PAGE_SIZE = 20
"""The API's default page size; the repository is asked for one more (21)."""

SORTS: dict[str, tuple[SortKey, ...]] = {
    spec: parse_sort(spec) for spec in ("-created_at", "-priority", "due_at")
}


def bench_url() -> str:
    """BENCH_DATABASE_URL, as a plain postgresql:// URL (what psql and psycopg take)."""
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)


def bench_settings() -> Settings:
    """The app's settings on the bench database; the URL gets the app's own driver prefix."""
    return Settings(
        environment="test",
        database_url=bench_url(),
        redis_url=None,
        secret_key=SECRET_KEY,
        rate_limit_enabled=False,
        log_level="WARNING",
    )


def libpq_url() -> str:
    """The bench URL without a SQLAlchemy driver suffix, for psycopg itself."""
    url = bench_url()
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


def app_url(url: str) -> str:
    """A plain postgresql:// URL with the app's driver prefix, as Settings would spell it."""
    scheme, _, rest = url.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme in ("postgres", "postgresql") else url
