"""The security each operation declares in the OpenAPI document (schemas.common.TOKEN_REQUIRED
on the route) matches what the route does: an operation that declares it refuses a request
without a token, and one that does not never asks for a token."""

import re
from typing import Any

from httpx import AsyncClient

ANY_ID = "00000000-0000-4000-8000-000000000000"


async def test_declared_security_matches_which_routes_read_the_token(
    app: Any, client: AsyncClient
) -> None:
    checked = 0
    for path, operations in app.openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", ANY_ID, path)
        for method, operation in operations.items():
            response = await client.request(method.upper(), concrete)
            asks_for_token = (
                response.status_code == 401 and response.json()["code"] == "not_authenticated"
            )
            assert asks_for_token == ("security" in operation), (method, path, response.text)
            checked += 1
    assert checked >= 20
