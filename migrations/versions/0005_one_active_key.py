"""One active data key per subject and cipher, enforced by a partial unique index.

Two first writes for a new subject could otherwise both make an active key (the second
reading the first's version after it committed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("uq_subject_keys_active", "subject_keys", ["subject_id", "cipher"],
                    unique=True, sqlite_where=sa.text("state = 'active'"),
                    postgresql_where=sa.text("state = 'active'"))


def downgrade() -> None:
    op.drop_index("uq_subject_keys_active", table_name="subject_keys")
