"""The worker process as deployed (scripts/worker) beside the API (scripts/serve) on
PostgreSQL: it delivers what the API commits, and stops cleanly on SIGTERM."""

import asyncio
from contextlib import ExitStack

import httpx

from harness import worker
from harness.receiver import receiver
from tests.conftest import on_postgres
from tests.serving import ARTIFACTS, Serve, worker_environment
from tests.support import API, PASSWORD

pytestmark = on_postgres
CHANGES = 5


async def test_the_worker_delivers_what_the_api_commits_and_stops_cleanly(
    serve: Serve, migrated: str
) -> None:
    stack = ExitStack()  # the live server is started and stopped off the event loop
    server = await asyncio.to_thread(stack.enter_context, serve())
    try:
        async with receiver() as target, httpx.AsyncClient(base_url=server.url) as http:
            credentials = {"email": "hooks@example.com", "password": PASSWORD}
            assert (await http.post(f"{API}/auth/register", json=credentials)).status_code == 201
            token = (await http.post(f"{API}/auth/login", json=credentials)).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            hook = await http.post(
                f"{API}/webhooks", json={"url": target.url, "events": ["*"]}, headers=headers
            )
            assert hook.status_code == 201, hook.text
            running = await asyncio.to_thread(
                worker.start, env=worker_environment(migrated), log=ARTIFACTS / "worker.log"
            )
            try:
                for n in range(CHANGES):
                    created = await http.post(
                        f"{API}/todos", json={"title": f"todo {n}"}, headers=headers
                    )
                    assert created.status_code == 201
                received = await target.until(CHANGES, within=30)
                assert sorted(r.json["data"]["todo"]["title"] for r in received) == [
                    f"todo {n}" for n in range(CHANGES)
                ]
            finally:
                code = await asyncio.to_thread(running.stop)
            assert code == 0, running.log.read_text()[-3000:]
    finally:
        await asyncio.to_thread(stack.close)
