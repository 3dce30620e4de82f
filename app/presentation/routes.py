"""Which documented route template a raw path belongs to, from the OpenAPI paths (the public
list of routes): for metrics labels and for a 405's complete `Allow` header."""

import re
from typing import Any
from weakref import WeakKeyDictionary


class RouteTemplates:
    def __init__(self, paths: dict[str, Any]) -> None:
        self._compiled: list[tuple[re.Pattern[str], str, frozenset[str]]] = []
        for template, operations in paths.items():
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            methods = frozenset(method.upper() for method in operations)
            self._compiled.append((re.compile(pattern), template, methods))

    def match(self, path: str) -> tuple[str, frozenset[str]] | None:
        """The template and its methods; None for a path no documented route serves."""
        for pattern, template, methods in self._compiled:
            if pattern.fullmatch(path):
                return template, methods
        return None


# Compiled once per app, on first use (a 405, or a route's first metrics label). Kept beside
# the app rather than in its state, which is the container's alone; gone with the app.
_by_app: WeakKeyDictionary[Any, RouteTemplates] = WeakKeyDictionary()


def route_templates(app: Any) -> RouteTemplates:
    templates = _by_app.get(app)
    if templates is None:
        templates = _by_app[app] = RouteTemplates(app.openapi()["paths"])
    return templates
