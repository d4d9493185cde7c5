"""Identity verification of data-subject requests (method, who asserted it, when); idempotency
entries that name their subject (so erasure purges them), hold personal responses sealed under
the subject's key, and expire.

Entries stored before this revision hold record responses in clear: their subject is taken from
the response, so that an erasure purges them, and they expire a day after they were made.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

import json
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dsr_requests") as batch:
        batch.add_column(sa.Column("verification_method", sa.String(64), nullable=True))
        batch.add_column(sa.Column("verified_by", sa.String(255), nullable=True))
        batch.add_column(sa.Column("verified_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("subject_id", sa.String(255), nullable=True))
        batch.add_column(sa.Column("sealed_response", sa.Text(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("erased_at", sa.DateTime(), nullable=True))
    keys = sa.table("idempotency_keys", sa.column("caller"), sa.column("key"),
                    sa.column("response", sa.JSON()), sa.column("created_at", sa.DateTime()),
                    sa.column("subject_id"), sa.column("expires_at", sa.DateTime()))
    connection = op.get_bind()
    for row in connection.execute(sa.select(keys.c.caller, keys.c.key, keys.c.response,
                                            keys.c.created_at)).all():
        response = row.response if not isinstance(row.response, str) else json.loads(
            row.response)
        subject = response.get("subject_id") if isinstance(response, dict) else None
        connection.execute(keys.update().where(keys.c.caller == row.caller,
                                               keys.c.key == row.key).values(
            subject_id=subject if isinstance(subject, str) else None,
            expires_at=row.created_at + timedelta(days=1)))
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.alter_column("expires_at", existing_type=sa.DateTime(), nullable=False)
    op.create_index(op.f("ix_idempotency_keys_subject_id"), "idempotency_keys", ["subject_id"])
    op.create_index(op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_index(op.f("ix_idempotency_keys_subject_id"), table_name="idempotency_keys")
    with op.batch_alter_table("idempotency_keys") as batch:
        for column in ("erased_at", "expires_at", "sealed_response", "subject_id"):
            batch.drop_column(column)
    with op.batch_alter_table("dsr_requests") as batch:
        for column in ("verified_at", "verified_by", "verification_method"):
            batch.drop_column(column)
