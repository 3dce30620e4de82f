"""Schemathesis against the whole app over ASGI, as a normal user, for every operation.

Each operation gets its documented examples, boundary values, and up to CONTRACT_MAX_EXAMPLES
(10 unless set) generated positive and negative examples; every response must be a non-5xx
with a status code, content type, headers and body its OpenAPI operation declares, input the
schema forbids must be refused, and valid credentials must be what lets a request in."""

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi
from starlette.types import Receive, Scope, Send

from app.config import Settings
from app.infrastructure.passwords import common_passwords
from app.main import create_app
from tests.conftest import PASSWORD, empty_stores
from tests.contract.conftest import published_document

MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "10"))

# What schemathesis takes by default as an answer to schema-valid input.
ACCEPTED: list[int | str] = ["2xx", "3xx", 401, 403, 404, 409, 429, "5xx"]
# Schema-valid input that no schema can describe as invalid: a cursor the server did not issue
# (400 invalid_cursor), a wrong current password (422 on the field).
ALSO_ACCEPTED = {"list_todos": 400, "list_users": 400, "change_password": 422}


# Emails the server takes: email-validator refuses special-use domains (`a@b.test`), which the
# `email` format of JSON Schema allows.
def _not_special_use(email: str) -> bool:
    return email.rsplit(".", 1)[-1].lower() not in SPECIAL_USE_DOMAIN_NAMES


schemathesis.openapi.format("email", st.emails().filter(_not_special_use))


class CurrentApp:
    """The app under test, for a schema loaded before any app exists: each test puts a fresh
    app here. Schemathesis' own re-sends (auth probes) go to `schema.app`, so it must be set."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "the `api` fixture sets the app"
        await self.app(scope, receive, send)


current_app = CurrentApp()

# The document the service publishes, needed here at collection time. Loaded from a dict:
# schemathesis' `from_fixture` breaks under pytest 9 (it sets `Function._nodeid`).
schema = schemathesis.openapi.from_dict(
    published_document(),
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
            "operations": [
                {
                    "include-operation-id": operation_id,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, status]}
                    },
                }
                for operation_id, status in ALSO_ACCEPTED.items()
            ],
        }
    ),
)
schema.app = current_app


def refused_beyond_the_schema(case: Any) -> bool:
    """Valid by the schema, yet rightly a 422, by rules no JSON Schema can state: a sort field
    given twice (a pattern without back-references cannot forbid it), a well-known password or
    one equal to the email (the password policy)."""
    sort = (case.query or {}).get("sort")
    if isinstance(sort, str):
        fields = [part.removeprefix("-") for part in sort.split(",")]
        if len(fields) != len(set(fields)):
            return True
    if case.operation.definition.raw.get("operationId") != "register":
        return False
    body = case.body if isinstance(case.body, dict) else {}
    password = body.get("password")
    return isinstance(password, str) and (
        password.lower() in common_passwords()
        or password.strip().lower() == str(body.get("email", "")).strip().lower()
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[asgi.ASGIClient]:
    """A fresh app on empty stores. Schemathesis' ASGI client runs its lifespan on an event
    loop of its own (so the engine lives there too); it is stopped after the test."""
    asyncio.run(empty_stores(settings))
    current_app.app = create_app(settings)
    # Schemathesis types ASGI messages as dicts, Starlette as mappings: the same thing.
    with asgi.get_client(cast(asgi.ASGIApp, current_app)) as client:
        yield client
    asgi.shutdown_lifespans()
    current_app.app = None


def sign_up(api: asgi.ASGIClient) -> dict[str, str]:
    """A new normal user's bearer header. One per example: some operations end the session or
    the account, change the email, or remember an Idempotency-Key for the user."""
    credentials = {"email": f"contract-{uuid.uuid4().hex}@example.com", "password": PASSWORD}
    registered = api.post("/api/v1/auth/register", json=credentials)
    assert registered.status_code == 201, registered.text
    login = api.post("/api/v1/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@schema.parametrize()
@settings(
    deadline=None,
    # CI draws the same examples every run, so a landing never hinges on luck; set
    # CONTRACT_RANDOM=1 (or run outside CI) to explore new ones.
    derandomize=os.environ.get("CI") == "true" and not os.environ.get("CONTRACT_RANDOM"),
    # One app serves all examples of an operation, on purpose; each example signs up anew.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_every_operation_honours_its_openapi_contract(case: Any, api: asgi.ASGIClient) -> None:
    if case.meta.generation.mode is GenerationMode.POSITIVE and refused_beyond_the_schema(case):
        return
    secured = bool(case.operation.definition.raw.get("security"))
    case.call_and_validate(headers=sign_up(api) if secured else None)
