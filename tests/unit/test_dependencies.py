"""Declared = imported (scripts/check_dependencies.py, also a CI step): every package app/
imports is a declared dependency, and every declared one is used."""

import importlib.util
from types import ModuleType

import pytest

from tests.conftest import ROOT


def _check() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_dependencies", ROOT / "scripts" / "check_dependencies.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_package_app_imports_is_declared_and_every_declared_one_used() -> None:
    assert _check().problems() == []


def test_a_package_that_only_arrives_with_another_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = _check()
    declared = check.declared()
    monkeypatch.setattr(check, "declared", lambda: declared - {"starlette", "opentelemetry-api"})
    found = check.problems()
    assert any(p.startswith("starlette is imported by app/presentation/") for p in found), found
    assert any(
        p.startswith("opentelemetry-api is imported by") and "app/tracing/" in p for p in found
    ), found


def test_a_declared_package_nothing_uses_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    check = _check()
    declared = check.declared()
    monkeypatch.setattr(check, "declared", lambda: declared | {"left-pad"})
    assert check.problems() == [
        "left-pad is declared but app/ never imports it (or say why in this script)"
    ]
