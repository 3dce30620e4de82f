"""DB_STATEMENT_TIMEOUT_MS on PostgreSQL: a statement that runs past it is cancelled by the
server and answered as a 503 `service_unavailable` saying the query took too long (with
Retry-After), on the read path as on the write path; the service stays healthy after it."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from httpx import ASGITransport, AsyncClient

from app.config import Settings
from app.infrastructure.db import create_engine
from app.main import create_app
from tests.conftest import on_postgres
from tests.support import API, MakeUser, assert_problem

pytestmark = on_postgres

TIMEOUT_MS = 300
GIVE_UP_SECONDS = 20  # without a timeout the requests wait for the lock: fail, do not hang


@pytest.fixture
async def impatient(app: Any, settings: Settings) -> AsyncIterator[AsyncClient]:
    """The service with a short statement timeout, on the same stores as `client`."""
    update = {"db_statement_timeout_ms": TIMEOUT_MS}
    impatient_app = create_app(settings.model_copy(update=update))
    async with impatient_app.router.lifespan_context(impatient_app):
        transport = ASGITransport(app=impatient_app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://impatient") as http:
            yield http


async def test_a_statement_past_the_timeout_is_a_503_and_the_service_stays_healthy(
    impatient: AsyncClient, make_user: MakeUser, settings: Settings
) -> None:
    ada = await make_user()
    created = await impatient.post(f"{API}/todos", json={"title": "milk"}, headers=ada.headers)
    assert created.status_code == 201, created.text
    todo_id = created.json()["id"]
    # Another session holds the todos table: every statement on it waits, past the timeout.
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as holder:
            await holder.execute(sa.text("LOCK TABLE todos IN ACCESS EXCLUSIVE MODE"))
            requests = (
                impatient.get(f"{API}/todos?q=milk", headers=ada.headers),
                impatient.get(f"{API}/todos/{todo_id}", headers=ada.headers),
                impatient.post(f"{API}/todos", json={"title": "eggs"}, headers=ada.headers),
            )
            answers = await asyncio.wait_for(asyncio.gather(*requests), GIVE_UP_SECONDS)
            await holder.rollback()
    finally:
        await engine.dispose()
    for answer in answers:
        body = assert_problem(answer, 503, "service_unavailable")
        assert "took too long" in body["detail"]
        assert answer.headers["Retry-After"].isdigit()

    ready = await impatient.get("/health/ready")
    assert ready.status_code == 200, ready.text
    listed = await impatient.get(f"{API}/todos", headers=ada.headers)
    assert [todo["title"] for todo in listed.json()["items"]] == ["milk"]  # eggs: rolled back
    again = await impatient.post(f"{API}/todos", json={"title": "eggs"}, headers=ada.headers)
    assert again.status_code == 201
