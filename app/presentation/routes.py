"""Which documented route served a request, from the route Starlette's router records in
`scope["route"]`: for metrics labels, a 405's complete `Allow` header, and where an invalid
field was declared."""

from typing import Any
from weakref import WeakKeyDictionary

from fastapi import FastAPI
from fastapi.routing import APIRoute


def route_template(route: object) -> str | None:
    """The route's template as the OpenAPI document names it (`/api/v1/todos/{todo_id}`);
    None for a route the document leaves out (docs pages, assets) or no route at all."""
    if isinstance(route, APIRoute) and route.include_in_schema:
        return route.path_format
    return None


def _methods_by_template(app: FastAPI) -> dict[str, frozenset[str]]:
    methods: dict[str, set[str]] = {}
    for route in app.routes:
        template = route_template(route)
        if isinstance(route, APIRoute) and template is not None:
            methods.setdefault(template, set()).update(route.methods or ())
    return {template: frozenset(names) for template, names in methods.items()}


# Computed once per app, on its first 405. Kept beside the app rather than in its state,
# which is the container's alone; gone with the app.
_by_app: WeakKeyDictionary[Any, dict[str, frozenset[str]]] = WeakKeyDictionary()


def allowed_methods(app: FastAPI, template: str) -> frozenset[str]:
    """Every method the app's documented routes answer on this template."""
    by_template = _by_app.get(app)
    if by_template is None:
        by_template = _by_app[app] = _methods_by_template(app)
    return by_template.get(template, frozenset())


Locations = dict[tuple[str, str], dict[str, str]]
_locations_by_app: WeakKeyDictionary[Any, Locations] = WeakKeyDictionary()


def parameter_locations(app: FastAPI, template: str, method: str) -> dict[str, str]:
    """The operation's parameters by name, each with where it is sent (`path`, `query`,
    `header`, `cookie`), as the app's OpenAPI document declares them: those a dependency reads
    itself (`openapi_extra`) included. Read once per app, on its first use."""
    locations = _locations_by_app.get(app)
    if locations is None:
        locations = _locations_by_app[app] = {
            (path, verb.upper()): {
                parameter["name"]: parameter["in"] for parameter in operation.get("parameters", ())
            }
            for path, operations in app.openapi()["paths"].items()
            for verb, operation in operations.items()
        }
    return locations.get((template, method), {})
