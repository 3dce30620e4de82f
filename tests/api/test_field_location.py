"""A domain InvalidField is named by where the matched route declares the field, never by
what the client happened to send (app/presentation/errors.py)."""

from typing import Annotated

from fastapi import Depends, FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel

from app.domain.errors import InvalidField
from app.presentation.errors import install_error_handlers
from app.presentation.query import query_model, query_parameters


class Filters(BaseModel):
    colour: str | None = None


class Body(BaseModel):
    name: str


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/declared")
    async def declared(limit: int = 0) -> None:
        raise InvalidField("limit", "Too many.")

    @app.get("/modelled", openapi_extra=query_parameters(Filters))
    async def modelled(filters: Annotated[Filters, Depends(query_model(Filters))]) -> None:
        raise InvalidField("colour", "No such colour.")

    @app.post("/bodied")
    async def bodied(body: Body) -> None:
        raise InvalidField("name", "Taken.")

    return app


async def _field(method: str, url: str, *, json: dict[str, str] | None = None) -> str:
    async with AsyncClient(transport=ASGITransport(app=_app()), base_url="http://t") as client:
        response = await client.request(method, url, json=json)
    assert response.status_code == 422
    field: str = response.json()["errors"][0]["field"]
    return field


async def test_a_declared_query_parameter_is_named_query_even_when_not_sent() -> None:
    assert await _field("GET", "/declared") == "query.limit"


async def test_a_query_model_parameter_is_named_query() -> None:
    assert await _field("GET", "/modelled") == "query.colour"


async def test_a_body_field_is_named_body_even_with_a_query_parameter_of_its_name() -> None:
    assert await _field("POST", "/bodied?name=x", json={"name": "x"}) == "body.name"
