"""Settings: defaults that just work, and one clear line per bad variable."""

from pathlib import Path

import pytest

from app.config import Settings, load_settings


def test_development_defaults_just_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.redis_url is None
    assert len(settings.secret_key.get_secret_value()) >= 32


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
    ],
)
def test_database_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert Settings(database_url=given).database_url == expected


def test_trusted_proxies_are_comma_separated_addresses_or_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.7, 172.16.0.0/12,,::1")
    settings = Settings(_env_file=None)
    assert settings.trusted_proxies == ["10.0.0.7/32", "172.16.0.0/12", "::1/128"]
    monkeypatch.delenv("TRUSTED_PROXIES")
    assert Settings(_env_file=None).trusted_proxies == []  # nobody, by default


def test_cors_origins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.io, https://b.io")
    assert Settings(_env_file=None).cors_origins == ["https://a.io", "https://b.io"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SECRET_KEY", "short"),
        ("RATE_LIMIT_LOGIN", "lots"),
        ("RATE_LIMIT_LOGIN_IP", "30 per minute please"),
        ("DATABASE_URL", "mysql://x"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "0"),
        ("LOG_FORMAT", "xml"),
        ("ENVIRONMENT", "staging"),
        ("TRUSTED_PROXIES", "*"),
        ("TRUSTED_PROXIES", "10.0.0.1, proxy.internal"),
        ("MAX_HEADERS", "5"),
        ("DB_STATEMENT_TIMEOUT_MS", "-1"),
        ("MAX_TODOS_PER_USER", "0"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit):
        load_settings()
    assert variable in capsys.readouterr().err


@pytest.mark.parametrize(
    ("redis_url", "refused"),
    [
        (None, "needs REDIS_URL"),
        ("redis://10.0.0.5:7000/2", "database 0 only"),
        ("redis://10.0.0.5:7000/0", None),
        ("rediss://:secret@redis.internal:6380", None),
    ],
)
def test_redis_cluster_needs_one_nodes_url_without_a_database(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    redis_url: str | None,
    refused: str | None,
) -> None:
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    if redis_url is None:
        monkeypatch.delenv("REDIS_URL", raising=False)
    else:
        monkeypatch.setenv("REDIS_URL", redis_url)
    if refused is None:
        assert load_settings().redis_cluster
        return
    with pytest.raises(SystemExit):
        load_settings()
    error = capsys.readouterr().err
    assert "REDIS_CLUSTER" in error
    assert refused in error


def test_production_refuses_to_start_without_a_strong_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Away from the checkout's .env, where scripts/start keeps a development SECRET_KEY.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(SystemExit):
        load_settings()
    assert "SECRET_KEY" in capsys.readouterr().err
    monkeypatch.setenv("SECRET_KEY", "k" * 32)
    assert load_settings().environment == "production"
