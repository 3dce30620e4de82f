from httpx import AsyncClient

from tests.conftest import MakeUser


async def test_register_login_create_list(client: AsyncClient, make_user: MakeUser) -> None:
    ada = await make_user("ada@example.com")
    created = await client.post("/api/v1/todos", json={"title": "Buy milk"}, headers=ada.headers)
    assert created.status_code == 201, created.text
    listed = await client.get("/api/v1/todos", headers=ada.headers)
    assert [t["title"] for t in listed.json()["items"]] == ["Buy milk"]
