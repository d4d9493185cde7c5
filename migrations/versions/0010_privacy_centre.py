"""The public privacy centre: one-time code challenges, verified people's sessions, and the
hourly counts that limit how many codes are sent.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_challenges",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=True),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_challenges")),
    )
    op.create_table(
        "privacy_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_privacy_sessions")),
    )
    op.create_index(op.f("ix_privacy_sessions_subject_id"), "privacy_sessions", ["subject_id"])
    op.create_table(
        "privacy_throttle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_throttle")),
    )
    op.create_index("ix_privacy_throttle_key_at", "privacy_throttle", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_privacy_throttle_key_at", table_name="privacy_throttle")
    op.drop_table("privacy_throttle")
    op.drop_index(op.f("ix_privacy_sessions_subject_id"), table_name="privacy_sessions")
    op.drop_table("privacy_sessions")
    op.drop_table("privacy_challenges")
