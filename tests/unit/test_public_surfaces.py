"""Every library is used through its public, documented surface: a static scan of app/ that
fails on

- an import of another package's private module (`pkg._x`) or of `sqlalchemy.util`;
- an import of another package's underscore name (`from pkg import _x`);
- an attribute `x._name` where `x` is not `self`, `cls` or a module of our own;
- a `__getattr__` definition (an object proxied through another);
- a class subclassing one of uvicorn's protocol classes;
- a name known to be a library's undocumented internal though it has no underscore
  (`KNOWN_INTERNALS`: the ones this code has reached for before).

A library upgrade cannot silently break what none of these reach. The scan reads source only
(`ast`): nothing is imported."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

APP = ROOT / "app"

# Undocumented internals without an underscore: SQLAlchemy's compiled-statement plumbing,
# uvicorn's protocol state, FastAPI's resolved dependency graph. Read as attributes or
# imported by name, each is a finding.
KNOWN_INTERNALS = frozenset(
    {
        "construct_params",
        "post_compile_params",
        "escaped_bind_names",
        "greenlet_spawn",
        "read_paused",
        "response_complete",
        "STATUS_LINE",
        "dependant",
    }
)

# Modules whose internals are no library's: ours.
OWN = "app"
# Private though their names do not say so: SQLAlchemy's utilities, FastAPI's dependency
# resolution (its docs describe `Depends`, never the graph built from it).
PRIVATE_MODULES = ("sqlalchemy.util", "fastapi.dependencies")
SERVER_PROTOCOLS = "uvicorn.protocols"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own(module: str) -> bool:
    return module == OWN or module.startswith(OWN + ".")


def _private_module(module: str) -> bool:
    parts = module.split(".")
    return any(_is_private(part) for part in parts) or any(
        module == private or module.startswith(private + ".") for private in PRIVATE_MODULES
    )


class Scan(ast.NodeVisitor):
    def __init__(self) -> None:
        self.findings: list[str] = []
        # Names this module binds to modules or objects of its own package.
        self.own_names: set[str] = {"self", "cls"}
        # Names bound to something from uvicorn's protocol modules.
        self.protocol_names: set[str] = set()

    def flag(self, node: ast.AST, what: str) -> None:
        self.findings.append(f"line {getattr(node, 'lineno', '?')}: {what}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            if _own(alias.name):
                self.own_names.add(bound)
            elif _private_module(alias.name):
                self.flag(node, f"imports the private module {alias.name}")
            if alias.name.startswith(SERVER_PROTOCOLS):
                self.protocol_names.add(bound)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or _own(module):  # relative imports are our own too
            self.own_names.update(alias.asname or alias.name for alias in node.names)
            return
        if _private_module(module):
            self.flag(node, f"imports from the private module {module}")
        for alias in node.names:
            if _is_private(alias.name) or alias.name in KNOWN_INTERNALS:
                self.flag(node, f"imports {module}.{alias.name}, another package's internal")
            if _private_module(f"{module}.{alias.name}"):
                self.flag(node, f"imports the private module {module}.{alias.name}")
            if module.startswith(SERVER_PROTOCOLS) or f"{module}.{alias.name}".startswith(
                SERVER_PROTOCOLS
            ):
                self.protocol_names.add(alias.asname or alias.name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in KNOWN_INTERNALS:
            self.flag(node, f"reads {ast.unparse(node)}, a library's undocumented internal")
        elif _is_private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in self.own_names):
                self.flag(node, f"reads or sets {ast.unparse(node)}, another object's private name")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name == "__getattr__":
            self.flag(node, "defines __getattr__: an object proxied through another")
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            root = base
            while isinstance(root, ast.Attribute):
                root = root.value
            text = ast.unparse(base)
            if (isinstance(root, ast.Name) and root.id in self.protocol_names) or (
                SERVER_PROTOCOLS in text
            ):
                self.flag(node, f"class {node.name} subclasses the server protocol {text}")
        self.generic_visit(node)


def findings(source: str) -> list[str]:
    scan = Scan()
    tree = ast.parse(source)
    # Imports first, wherever they sit, so every use sees what its names are bound to.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            scan.visit(node)
    scan.findings.clear()
    scan.visit(tree)
    return scan.findings


def modules() -> Iterator[Path]:
    yield from sorted(APP.rglob("*.py"))


def test_no_module_in_app_reaches_into_a_librarys_internals() -> None:
    report = []
    for path in modules():
        name = path.relative_to(ROOT).as_posix()
        report += [f"{name} {finding}" for finding in findings(path.read_text("utf-8"))]
    assert not report, "Library internals used (use the public API):\n" + "\n".join(report)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import fastapi._compat", "private module fastapi._compat"),
        ("from sqlalchemy.util import greenlet_spawn", "private module sqlalchemy.util"),
        ("from sqlalchemy import util", "private module sqlalchemy.util"),
        ("from opentelemetry.sdk.trace import sampling\nsampling._get()", "sampling._get"),
        ("from logging import _srcfile", "logging._srcfile"),
        ("from fastapi.dependencies.models import Dependant", "fastapi.dependencies.models"),
        ("def f(route):\n    return route.dependant.dependencies", "route.dependant"),
        ("def f(compiled):\n    return compiled.construct_params()", "undocumented internal"),
        ("def f(cycle):\n    return cycle.response_complete", "undocumented internal"),
        ("import logging\nlogging._srcfile = None", "logging._srcfile"),
        ("def f(route):\n    return route._embed_body_fields", "route._embed_body_fields"),
        ("class Proxy:\n    def __getattr__(self, name): ...", "defines __getattr__"),
        (
            "from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol\n"
            "class P(HttpToolsProtocol): ...",
            "subclasses the server protocol HttpToolsProtocol",
        ),
        (
            "import uvicorn.protocols.http.h11_impl as h11\nclass P(h11.H11Protocol): ...",
            "subclasses the server protocol h11.H11Protocol",
        ),
    ],
)
def test_the_scan_finds_each_kind_of_reach(source: str, found: str) -> None:
    assert any(found in finding for finding in findings(source)), findings(source)


@pytest.mark.parametrize(
    "source",
    [
        "class A:\n    def f(self):\n        return self._cache",
        "class A:\n    @classmethod\n    def f(cls):\n        return cls._made",
        "from app import logs\nlogs._STANDARD_ATTRS",
        "import app.presentation.routes as routes\nroutes._by_app",
        "from app.presentation import routes\nroutes._by_app",
        "x = object().__class__.__name__",
        "from fastapi import FastAPI",
    ],
)
def test_the_scan_lets_our_own_names_and_dunders_pass(source: str) -> None:
    assert findings(source) == []
