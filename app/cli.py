"""Command line: `todo-api create-admin --email admin@example.com` (password prompted, or
read from standard input when it is not a terminal)."""

import argparse
import asyncio
import getpass
import sys

from app.bootstrap import Container
from app.config import get_settings
from app.domain.errors import DomainError, EmailTaken


async def create_admin(email: str, password: str) -> None:
    """A new admin account; an existing account is never changed (EmailTaken)."""
    container = Container(get_settings())  # builds only what a UserService needs
    try:
        async with container.unit_of_work() as uow:
            await container.user_service(uow).create_admin(email=email, password=password)
    finally:
        await container.aclose()


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Admin password: ")
    return sys.stdin.readline().rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="todo-api", description="Todo API administration.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-admin",
        help="Create a new admin account. An existing account is never changed: promote one "
        "through the API, as an admin.",
    )
    create.add_argument("--email", required=True)
    args = parser.parse_args(argv)
    try:
        asyncio.run(create_admin(args.email, _read_password()))
    except EmailTaken:
        print(
            "error: an account with this email already exists; it was left unchanged "
            "(an admin can promote it through the API).",
            file=sys.stderr,
        )
        return 1
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    print(f"Created the admin {args.email}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
