"""Which documented route template a raw path belongs to, from the OpenAPI paths (the public
list of routes): for metrics labels and for a 405's complete `Allow` header."""

import re
from functools import cached_property
from typing import Any


class RouteTemplates:
    def __init__(self, app: Any) -> None:
        self._app = app

    @cached_property
    def _compiled(self) -> list[tuple[re.Pattern[str], str, frozenset[str]]]:
        compiled = []
        for template, operations in self._app.openapi()["paths"].items():
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            methods = frozenset(method.upper() for method in operations)
            compiled.append((re.compile(pattern), template, methods))
        return compiled

    def match(self, path: str) -> tuple[str, frozenset[str]] | None:
        """The template and its methods; None for a path no documented route serves."""
        for pattern, template, methods in self._compiled:
            if pattern.fullmatch(path):
                return template, methods
        return None


def route_templates(app: Any) -> RouteTemplates:
    templates: RouteTemplates | None = getattr(app.state, "route_templates", None)
    if templates is None:
        templates = app.state.route_templates = RouteTemplates(app)
    return templates
