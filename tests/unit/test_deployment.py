"""The deployment files read as a deployer relies on them: every setting the README documents
reaches the api containers, the api can be scaled (only nginx publishes a port), credentials
come from the environment with no default, the image's health check asks for readiness, and
only the official images are named. scripts/compose-proof runs the stack itself."""

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no types; schemathesis brings it
from fastapi.routing import APIRoute

from app.config import Settings
from app.presentation.routers import health

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_IMAGES = {"python:3.11-slim", "postgres:16", "redis:7", "nginx:stable"}
# Read by scripts/serve or uvicorn rather than by the settings.
SERVE_VARIABLES = {"WEB_CONCURRENCY", "MAX_CONNECTIONS", "GRACEFUL_SHUTDOWN_SECONDS"}


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def _api_environment() -> dict[str, str | None]:
    environment: dict[str, str | None] = _compose()["services"]["api"]["environment"]
    return environment


def _documented_variables() -> set[str]:
    """The names in the first column of the README's configuration tables."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_the_readme_documents_every_setting() -> None:
    settings = {name.upper() for name in Settings.model_fields}
    assert settings | SERVE_VARIABLES <= _documented_variables()


def test_the_readme_stays_a_five_minute_read() -> None:
    # A newcomer's page: what does not fit in 250 lines belongs in docs/.
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_every_documented_setting_reaches_the_api_containers() -> None:
    assert _documented_variables() - set(_api_environment()) == set()


def test_only_nginx_publishes_a_port_so_the_api_scales() -> None:
    services = _compose()["services"]
    assert [name for name, service in services.items() if "ports" in service] == ["nginx"]
    assert "container_name" not in services["api"]


def test_credentials_come_from_the_environment_with_no_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    services = _compose()["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    assert "${POSTGRES_PASSWORD:?" in _api_environment()["DATABASE_URL"]  # type: ignore[operator]
    assert str(_api_environment()["SECRET_KEY"]).startswith("${SECRET_KEY:?")
    assert not re.search(r"(PASSWORD|SECRET_KEY)[A-Z_]*:-", text)


def test_the_image_health_check_asks_for_readiness() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    healthcheck = dockerfile.split("\nHEALTHCHECK ", 1)[1].split("\n\n", 1)[0]
    (path,) = re.findall(r"http://127\.0\.0\.1:8000(/[a-z/]*)", healthcheck)
    (ready,) = [
        route
        for route in health.router.routes
        if isinstance(route, APIRoute)
        if route.operation_id == "ready"
    ]
    assert path == ready.path


def test_only_the_official_images_are_named() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = set(re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE))
    images = {service["image"] for service in _compose()["services"].values() if "image" in service}
    assert bases | images <= OFFICIAL_IMAGES
    assert "# syntax=" not in dockerfile  # a BuildKit frontend is an image of its own
