"""Alembic on a database named by URL, and throwaway PostgreSQL databases to run it on."""

from pathlib import Path

import psycopg
from alembic.config import Config
from psycopg import sql
from sqlalchemy.engine import make_url

from alembic import command

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    """The project's alembic.ini, on `url` (env.py reads it from the attributes), quiet."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking, with an event loop of its own (env.py's): call it off any running loop."""
    command.upgrade(alembic_config(url), revision)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://…`) as psycopg takes it (`postgresql://…`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _administer(url: str) -> tuple[str, psycopg.Connection[tuple[object, ...]]]:
    """The database `url` names, and a connection to the server's `postgres` database."""
    name = make_url(url).database
    if not name:
        raise ValueError(f"{url} names no database")
    admin = make_url(libpq_url(url)).set(database="postgres").render_as_string(hide_password=False)
    return name, psycopg.connect(admin, autocommit=True)


def create_database(url: str) -> None:
    """CREATE DATABASE for the database `url` names."""
    name, admin = _administer(url)
    with admin as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url: str) -> None:
    """DROP DATABASE … WITH (FORCE): whoever is still connected is cut off."""
    name, admin = _administer(url)
    with admin as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
