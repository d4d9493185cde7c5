"""KEK versions with check values (how every process learns of a new KEK version and detects a
wrong one); the readiness probe's heartbeat row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kek_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("check_value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_kek_versions")),
    )
    heartbeats = op.create_table(
        "ops_heartbeats",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("beat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ops_heartbeats")),
    )
    op.bulk_insert(heartbeats, [{"name": "readiness", "beat_at": datetime(2026, 11, 28)}])


def downgrade() -> None:
    op.drop_table("ops_heartbeats")
    op.drop_table("kek_versions")
