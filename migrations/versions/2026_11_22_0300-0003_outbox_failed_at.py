"""outbox: failed_at (dead letters), indexes for the relay's re-publish query and failed jobs

Revision ID: 0003_outbox
Revises: 0002
Create Date: 2026-11-22 03:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_outbox"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox_jobs", sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_outbox_jobs_open",
        "outbox_jobs",
        ["published_at"],
        unique=False,
        postgresql_where=sa.text("completed_at IS NULL AND failed_at IS NULL"),
    )
    op.create_index(
        "ix_outbox_jobs_failed",
        "outbox_jobs",
        ["failed_at"],
        unique=False,
        postgresql_where=sa.text("failed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_outbox_jobs_failed",
        table_name="outbox_jobs",
        postgresql_where=sa.text("failed_at IS NOT NULL"),
    )
    op.drop_index(
        "ix_outbox_jobs_open",
        table_name="outbox_jobs",
        postgresql_where=sa.text("completed_at IS NULL AND failed_at IS NULL"),
    )
    op.drop_column("outbox_jobs", "failed_at")
