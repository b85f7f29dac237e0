"""email: messages (rendered, queued in the business transaction, sent by the worker) and suppressions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 01:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_messages",
        sa.Column("dedup_key", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("reference_id", sa.Uuid(), nullable=True),
        sa.Column("to_address", sa.Text(), nullable=False),
        sa.Column("to_canonical", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("state", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_messages")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_email_messages_dedup_key")),
    )
    op.create_index(
        "ix_email_messages_due",
        "email_messages",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_email_messages_reference_id_state", "email_messages", ["reference_id", "state"], unique=False
    )
    op.create_index(op.f("ix_email_messages_to_canonical"), "email_messages", ["to_canonical"], unique=False)
    op.create_table(
        "email_suppressions",
        sa.Column("email_canonical", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("email_canonical", name=op.f("pk_email_suppressions")),
    )


def downgrade() -> None:
    op.drop_table("email_suppressions")
    op.drop_index(op.f("ix_email_messages_to_canonical"), table_name="email_messages")
    op.drop_index("ix_email_messages_reference_id_state", table_name="email_messages")
    op.drop_index(
        "ix_email_messages_due", table_name="email_messages", postgresql_where=sa.text("state = 'pending'")
    )
    op.drop_table("email_messages")
