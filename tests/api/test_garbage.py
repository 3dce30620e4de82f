"""The hot paths leave nothing of the app's for Python's cycle collector: what a request builds
is freed by reference counting when it is done. Garbage in cycles piles up between collections,
and one collection of a few seconds' worth stalls every request in flight."""

import gc
from collections.abc import Iterator

import pytest
from httpx import AsyncClient

from tests.support import API, MakeUser


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What became unreachable meanwhile, kept (not freed) for the test to look at."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def ours(garbage: list[object]) -> list[str]:
    return sorted({type(o).__qualname__ for o in garbage if type(o).__module__.startswith("app.")})


async def test_requests_leave_no_cycles_of_ours(
    client: AsyncClient, make_user: MakeUser, saved_garbage: list[object]
) -> None:
    ada = await make_user()
    gc.collect()  # what signing up left: only the requests below count
    saved_garbage.clear()

    created = await client.post(
        f"{API}/todos", json={"title": "Plan", "tags": ["w"]}, headers=ada.headers
    )
    assert created.status_code == 201, created.text
    path = created.headers["location"]
    for _ in range(3):
        assert (await client.get(path, headers=ada.headers)).status_code == 200
        assert (await client.get(f"{API}/todos?limit=20", headers=ada.headers)).status_code == 200
    patched = await client.patch(
        path, json={"completed": True}, headers={**ada.headers, "If-Match": created.headers["etag"]}
    )
    assert patched.status_code == 200, patched.text
    assert (await client.get("/health")).status_code == 200

    gc.collect()
    assert ours(saved_garbage) == []
