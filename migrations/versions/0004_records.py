"""Records, their blind indexes, and elevated-access requests.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=False),
        sa.Column("record_type", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("originals", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("retention_until", sa.DateTime(), nullable=True),
        sa.Column("field_retention", sa.JSON(), nullable=False),
        sa.Column("restricted_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records")),
    )
    op.create_index(op.f("ix_records_subject_id"), "records", ["subject_id"])
    op.create_index(op.f("ix_records_retention_until"), "records", ["retention_until"])
    op.create_table(
        "blind_indexes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE",
                                name=op.f("fk_blind_indexes_record_id_records")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blind_indexes")),
    )
    op.create_index(op.f("ix_blind_indexes_record_id"), "blind_indexes", ["record_id"])
    op.create_index("ix_blind_indexes_kind_digest", "blind_indexes", ["kind", "digest"])
    op.create_table(
        "access_requests",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("requester", sa.String(255), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=False),
        sa.Column("record_id", sa.String(40), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_requests")),
    )
    op.create_index(op.f("ix_access_requests_requester"), "access_requests", ["requester"])
    op.create_index(op.f("ix_access_requests_status"), "access_requests", ["status"])


def downgrade() -> None:
    op.drop_table("access_requests")
    op.drop_table("blind_indexes")
    op.drop_table("records")
