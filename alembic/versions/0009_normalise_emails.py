"""Stored emails take the form every login now looks up: NFKC, case-folded (normalise_email).

Emails were stored trimmed and lower-cased; an account registered as `ｆoo@x.io` or `straße@x.io`
would no longer be found by a login. Only rows with a non-ASCII character can differ (for
ASCII the two rules agree), so only those are read. A row whose new form is another account's
email, or the new form of more than one row, is left as it was and named in a warning: two
accounts cannot be merged by a migration, an operator decides (the one still stored in the old
form cannot log in until its email is changed). Downgrade leaves the emails as they are: the
old spellings cannot be told back from the new ones.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-05
"""

import logging
import unicodedata
from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

users = sa.table("users", sa.column("id", sa.Uuid()), sa.column("email", sa.String()))


def normalise_email(email: str) -> str:
    """app.domain.users.normalise_email as of this revision (a migration keeps its own copy, so
    a later change of the rule does not change what this revision did)."""
    folded = unicodedata.normalize("NFKC", email).casefold()
    return unicodedata.normalize("NFKC", folded).strip()


def _non_ascii(postgres: bool) -> sa.ColumnElement[bool]:
    """A character of more than one byte in UTF-8, in each dialect's terms."""
    if postgres:
        return sa.func.octet_length(users.c.email) != sa.func.char_length(users.c.email)
    return sa.func.length(sa.cast(users.c.email, sa.LargeBinary)) != sa.func.length(users.c.email)


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(users.c.id, users.c.email).where(_non_ascii(bind.dialect.name == "postgresql"))
    ).all()
    normal = {id_: (email, normalise_email(email)) for id_, email in rows}
    renamed = {id_: new for id_, (old, new) in normal.items() if new != old}
    claims = Counter(renamed.values())
    for id_, email in renamed.items():
        taken = bind.execute(sa.select(users.c.id).where(users.c.email == email)).first()
        if taken is not None or claims[email] > 1:
            log.warning("users %s: email left as it was; its normalised form is taken", id_)
            continue
        bind.execute(sa.update(users).where(users.c.id == id_).values(email=email))


def downgrade() -> None:
    pass
