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


async def test_two_workers_never_make_one_attempt_twice(serve: Serve, migrated: str) -> None:
    stack = ExitStack()
    server = await asyncio.to_thread(stack.enter_context, serve())
    workers: list[worker.Worker] = []
    try:
        async with receiver() as target, httpx.AsyncClient(base_url=server.url) as http:
            target.delay = 0.2  # attempts overlap in time: two workers would show it here
            credentials = {"email": "two@example.com", "password": PASSWORD}
            assert (await http.post(f"{API}/auth/register", json=credentials)).status_code == 201
            token = (await http.post(f"{API}/auth/login", json=credentials)).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            for path in ("a", "b"):
                body = {"url": f"{target.url}/{path}", "events": ["*"]}
                hook = await http.post(f"{API}/webhooks", json=body, headers=headers)
                assert hook.status_code == 201
            for name in ("a", "b"):
                workers.append(
                    await asyncio.to_thread(
                        worker.start,
                        env=worker_environment(migrated),
                        log=ARTIFACTS / f"worker-{name}.log",
                    )
                )
            for n in range(15):
                created = await http.post(f"{API}/todos", json={"title": f"t{n}"}, headers=headers)
                assert created.status_code == 201
            received = await target.until(30, within=60)  # 15 events, two webhooks each
            await asyncio.sleep(2)  # nothing more comes
            ids = [r.headers["webhook-id"] for r in target.received]
            assert len(received) == len(target.received) == 30
            assert len(set(ids)) == 15  # one id per event, the same for both webhooks
            assert len({(r.path, r.headers["webhook-id"]) for r in target.received}) == 30
            assert target.overlaps == 0
    finally:
        for running in workers:
            await asyncio.to_thread(running.stop)
        await asyncio.to_thread(stack.close)
