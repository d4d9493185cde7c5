"""Jobs, data-subject requests, legal holds, tombstones, webhooks; records gain deidentified_at and
erased_at.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("ref", sa.String(80), nullable=True),
        sa.Column("dedupe_key", sa.String(160), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("run_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(80), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_jobs_dedupe_key")),
    )
    op.create_index(op.f("ix_jobs_ref"), "jobs", ["ref"])
    op.create_index("ix_jobs_state_run_at", "jobs", ["state", "run_at"])
    op.create_table(
        "job_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(80), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE",
                                name=op.f("fk_job_attempts_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_attempts")),
    )
    op.create_index(op.f("ix_job_attempts_job_id"), "job_attempts", ["job_id"])
    op.create_table(
        "dsr_requests",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("jurisdiction", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("verification", sa.Text(), nullable=False),
        sa.Column("corrections", sa.Text(), nullable=True),
        sa.Column("submitted_by", sa.String(255), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("first_due_at", sa.DateTime(), nullable=False),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("step", sa.String(32), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dsr_requests")),
    )
    op.create_index(op.f("ix_dsr_requests_subject_id"), "dsr_requests", ["subject_id"])
    op.create_index(op.f("ix_dsr_requests_status"), "dsr_requests", ["status"])
    op.create_index(op.f("ix_dsr_requests_due_at"), "dsr_requests", ["due_at"])
    op.create_table(
        "dsr_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dsr_id", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("event", sa.String(48), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["dsr_id"], ["dsr_requests.id"], ondelete="CASCADE",
                                name=op.f("fk_dsr_events_dsr_id_dsr_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dsr_events")),
    )
    op.create_index(op.f("ix_dsr_events_dsr_id"), "dsr_events", ["dsr_id"])
    op.create_table(
        "dsr_exports",
        sa.Column("dsr_id", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=False),
        sa.Column("json_doc", sa.Text(), nullable=False),
        sa.Column("html_doc", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["dsr_id"], ["dsr_requests.id"], ondelete="CASCADE",
                                name=op.f("fk_dsr_exports_dsr_id_dsr_requests")),
        sa.PrimaryKeyConstraint("dsr_id", name=op.f("pk_dsr_exports")),
    )
    op.create_index(op.f("ix_dsr_exports_subject_id"), "dsr_exports", ["subject_id"])
    op.create_index(op.f("ix_dsr_exports_expires_at"), "dsr_exports", ["expires_at"])
    op.create_table(
        "tombstones",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=False),
        sa.Column("dsr_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_tombstones")),
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=True),
        sa.Column("record_type", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("released_by", sa.String(255), nullable=True),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    op.create_index(op.f("ix_legal_holds_subject_id"), "legal_holds", ["subject_id"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("deidentified_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("erased_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("deidentified_at")
    for table in ("webhooks", "legal_holds", "tombstones", "dsr_exports", "dsr_events",
                  "dsr_requests", "job_attempts", "jobs"):
        op.drop_table(table)
