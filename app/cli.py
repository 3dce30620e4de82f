"""Command line: `todo-api create-admin --email admin@example.com` (password prompted, or
read from standard input when it is not a terminal)."""

import argparse
import asyncio
import getpass
import sys

from app.config import get_settings
from app.domain.errors import DomainError
from app.infrastructure.db import create_engine
from app.main import build_adapters, ensure_first_admin


async def create_admin(email: str, password: str) -> None:
    settings = get_settings()
    engine = create_engine(settings.database_url, autocommit=True)
    try:
        await ensure_first_admin(
            build_adapters(settings, engine, None), email=email, password=password
        )
    finally:
        await engine.dispose()


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Admin password: ")
    return sys.stdin.readline().rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="todo-api", description="Todo API administration.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-admin", help="Create the admin account, or make an existing account admin."
    )
    create.add_argument("--email", required=True)
    args = parser.parse_args(argv)
    try:
        asyncio.run(create_admin(args.email, _read_password()))
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    print(f"{args.email} is an active admin.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
