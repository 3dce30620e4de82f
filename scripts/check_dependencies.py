"""Declared = imported: every distribution whose modules app/ imports is a declared runtime
dependency in pyproject.toml (not one that merely arrives with another), and every declared one
is imported by app/ or named in USED_WITHOUT_IMPORT with the reason.

Each import is traced to the distribution whose installed files hold that module (its RECORD),
so a namespace package such as `opentelemetry` is resolved per module. Nothing is imported.
Run in the project's environment: `uv run python scripts/check_dependencies.py`."""

import ast
import re
import sys
import tomllib
from collections import defaultdict
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN = "app"

# Declared, needed at run time, and reached by name or by a library rather than imported.
USED_WITHOUT_IMPORT = {
    "psycopg": "the PostgreSQL driver SQLAlchemy loads for a postgresql+psycopg URL",
    "aiosqlite": "the SQLite driver SQLAlchemy loads for a sqlite+aiosqlite URL",
    "email-validator": "what pydantic's EmailStr validates with",
    "argon2-cffi": "libpass's Argon2 backend",
    "python-multipart": "what FastAPI parses the OAuth2 token form with",
    "alembic": "the migrations (alembic/), run by scripts/serve before the server starts",
    "fastapi-offline": "the Swagger UI and ReDoc assets, found by package name (docs.py)",
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    return {
        normalise(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0])
        for spec in project["dependencies"]
    }


def module_owners(tops: set[str]) -> dict[str, set[str]]:
    """Dotted module name -> the distributions whose files hold it, for modules under `tops`."""
    owners: dict[str, set[str]] = defaultdict(set)
    by_top = packages_distributions()
    for name in {dist for top in tops for dist in by_top.get(top, ())}:
        for file in distribution(name).files or ():
            parts = file.parts
            if file.suffix not in (".py", ".pyi", ".so", ".pyd") or parts[0] not in tops:
                continue
            stem = parts[-1].split(".", 1)[0]
            dotted = [*parts[:-1], stem] if stem != "__init__" else list(parts[:-1])
            for depth in range(1, len(dotted) + 1):  # a package is held by what holds its files
                owners[".".join(dotted[:depth])].add(normalise(name))
    return owners


def imported_modules() -> dict[str, set[str]]:
    """Module -> the app/ files importing it (absolute imports of other packages only)."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted((ROOT / OWN).rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != OWN and top not in sys.stdlib_module_names:
                    found[name].add(where)
    return found


def owner_of(module: str, owners: dict[str, set[str]]) -> set[str]:
    """The distributions holding the longest known prefix of `module` (`from a.b import c`
    names either the module a.b.c or a name in a.b)."""
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        held = owners.get(".".join(parts[:depth]))
        if held:
            return held
    return set()


def problems() -> list[str]:
    wanted, imported = declared(), imported_modules()
    owners = module_owners({module.split(".")[0] for module in imported})
    importers: dict[str, set[str]] = defaultdict(set)  # distribution -> app/ files
    found = []
    for module, files in sorted(imported.items()):
        held = owner_of(module, owners)
        if not held:
            found.append(f"{module} (imported by {', '.join(sorted(files))}) is not installed")
        for name in held & wanted or held:  # a module two ship counts for the declared one
            importers[name] |= files
    for name, files in sorted(importers.items()):
        if name not in wanted:
            found.append(
                f"{name} is imported by {', '.join(sorted(files))} but pyproject.toml does not "
                "declare it (it only arrives with another dependency)"
            )
    for name in sorted(wanted - set(importers) - set(USED_WITHOUT_IMPORT)):
        found.append(f"{name} is declared but app/ never imports it (or say why in this script)")
    return found


def main() -> None:
    found = problems()
    for problem in found:
        print(f"dependencies: {problem}", file=sys.stderr)
    if found:
        raise SystemExit(1)
    print("dependencies: every package app/ imports is declared, and every declared one is used")


if __name__ == "__main__":
    main()
