"""One migration run at a time per PostgreSQL database: replicas of the service that start
together each run `alembic upgrade head`, and two runs racing on one schema fail (both create
the version table, both apply the same revision). alembic/env.py holds this lock around its
run; the run that gets it second finds the schema at head and does nothing."""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# An advisory lock in PostgreSQL's two-key space, apart from the one-key space the app's own
# advisory locks use (idempotency keys, per-owner creates), so none of theirs can be this one.
MIGRATION_LOCK = (0x746F646F, 1)  # "todo", 1

_LOCK = sa.text("SELECT pg_advisory_lock(:group_key, :lock_key)").bindparams(
    group_key=MIGRATION_LOCK[0], lock_key=MIGRATION_LOCK[1]
)
_UNLOCK = sa.text("SELECT pg_advisory_unlock(:group_key, :lock_key)").bindparams(
    group_key=MIGRATION_LOCK[0], lock_key=MIGRATION_LOCK[1]
)


@contextmanager
def migration_lock(connection: Connection) -> Iterator[None]:
    """Waits for the lock on PostgreSQL and holds it until the block ends; on SQLite, nothing
    (one file, served by one process in the embedded default). The lock belongs to the
    session, not a transaction, so the migrations' own transactions begin and commit inside
    it; if the process dies, PostgreSQL ends the session and the lock with it."""
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.execute(_LOCK)
    connection.commit()  # end the transaction the SELECT began; Alembic begins its own
    try:
        yield
    finally:
        if not connection.invalidated:
            connection.execute(_UNLOCK)
            connection.commit()
