"""The audit queue's rows carry the time the database queued them (`queued_at`), set by the
database's clock and by no writer: the integration lag is measured with it, so a row queued by
hand with an odd `ts` (years away, `infinity`) can neither hide a stalled sequencer nor raise a
false alarm. And the queue refuses a row whose roles and details take more than 256 KiB as JSON
text (the gateway's own stay far below): one queued by hand, compressed on disk to a fraction
of its size, would cost the sequencer and every reader of the log its full size.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the time of the INSERT itself, not of its transaction's start
NOW = {"postgresql": "clock_timestamp()", "sqlite": "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"}
MAX_ROW_BYTES = 256 * 1024  # app.audit.intake.MAX_ROW_BYTES
SIZE = {"postgresql": "octet_length(roles::text) + octet_length(details::text) <= {}",
        "sqlite": "length(CAST(roles AS BLOB)) + length(CAST(details AS BLOB)) <= {}"}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    column = sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False,
                       server_default=sa.text(NOW[dialect]))
    # SQLite adds no column with a default that is not a constant: the table is copied
    with op.batch_alter_table("audit_pending", recreate="auto" if dialect != "sqlite"
                              else "always") as batch:
        batch.add_column(column)
        if dialect == "sqlite":
            batch.create_check_constraint(op.f("ck_audit_pending_size"),
                                          SIZE[dialect].format(MAX_ROW_BYTES))
    if dialect == "postgresql":
        # a row already queued past the limit must not stop the upgrade (the sequencer makes
        # it a stand-in entry without fetching its JSON): then the CHECK holds for new rows only
        check = SIZE[dialect].format(MAX_ROW_BYTES)
        past = op.get_bind().execute(sa.text(
            f"SELECT EXISTS (SELECT 1 FROM audit_pending WHERE NOT ({check}))")).scalar()  # noqa: S608 - constants
        op.execute("ALTER TABLE audit_pending ADD CONSTRAINT ck_audit_pending_size CHECK "
                   f"({check}){' NOT VALID' if past else ''}")


def downgrade() -> None:
    with op.batch_alter_table("audit_pending") as batch:
        batch.drop_constraint(op.f("ck_audit_pending_size"), type_="check")
        batch.drop_column("queued_at")
