"""Webhooks, their deliveries and dispatch position; the job engine's schema (procrastinate).

On PostgreSQL the job engine's tables and functions are procrastinate's own schema, as the
installed procrastinate ships it (`SchemaManager.get_schema()`): the job table lives in the
service's database, beside what its jobs read. SQLite (the embedded default) runs jobs in
process and needs none.

The dispatch position starts at the log's horizon: no webhook existed before this migration,
so nothing before it has anyone to hear it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = sa.text("next_attempt_at IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("previous_secret", sa.String(100), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_webhooks_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
    )
    op.create_index(
        "ix_webhooks_user_id_created_at_id", "webhooks", ["user_id", "created_at", "id"]
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(32), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trace", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name="fk_webhook_deliveries_webhook_id_webhooks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint(
            "webhook_id", "event_id", name="uq_webhook_deliveries_webhook_id_event_id"
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_id_created_at_id",
        "webhook_deliveries",
        ["webhook_id", "created_at", "id"],
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=DUE,
        sqlite_where=DUE,
    )
    op.create_table(
        "webhook_dispatch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_dispatch"),
    )
    # The traceparent of the request behind a change, for the jobs' spans (null untraced).
    op.add_column("activity", sa.Column("trace", sa.String(64), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "INSERT INTO webhook_dispatch (id, txid, n) "
            "SELECT 1, pg_snapshot_xmin(pg_current_snapshot())::text::bigint, 0"
        )
        # Through the driver, whose placeholders are %-signs: literal ones doubled, as
        # procrastinate's own `apply_schema` does.
        bind.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))
    else:
        op.execute(
            "INSERT INTO webhook_dispatch (id, txid, n) "
            "SELECT 1, coalesce(max(txid), 0) + 1, 0 FROM activity"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, "
            "procrastinate_jobs, procrastinate_workers CASCADE"
        )
        op.execute(
            """
            DO $$
            DECLARE item record;
            BEGIN
              FOR item IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                JOIN pg_namespace s ON s.oid = p.pronamespace
                WHERE s.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
              LOOP EXECUTE 'DROP FUNCTION ' || item.signature || ' CASCADE'; END LOOP;
              FOR item IN SELECT t.typname FROM pg_type t
                JOIN pg_namespace s ON s.oid = t.typnamespace
                WHERE s.nspname = current_schema() AND t.typname LIKE 'procrastinate\\_%'
                  AND t.typtype IN ('e', 'c')
              LOOP EXECUTE 'DROP TYPE ' || quote_ident(item.typname) || ' CASCADE'; END LOOP;
            END $$
            """
        )
    with op.batch_alter_table("activity") as batch:
        batch.drop_column("trace")
    op.drop_table("webhook_dispatch")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_index(
        "ix_webhook_deliveries_webhook_id_created_at_id", table_name="webhook_deliveries"
    )
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhooks_user_id_created_at_id", table_name="webhooks")
    op.drop_table("webhooks")
