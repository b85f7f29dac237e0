"""integrations (webhook integrators) and the webhook ids seen from each

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 04:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("default_petition_id", sa.Uuid(), nullable=True),
        sa.Column("organisation_id", sa.Uuid(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("secret_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["default_petition_id"],
            ["petitions.id"],
            name=op.f("fk_integrations_default_petition_id_petitions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_integrations_organisation_id_organisations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
    )
    op.create_index(
        op.f("ix_integrations_default_petition_id"), "integrations", ["default_petition_id"], unique=False
    )
    op.create_index(
        op.f("ix_integrations_organisation_id"), "integrations", ["organisation_id"], unique=False
    )
    op.create_table(
        "integration_seen_webhooks",
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_seen_webhooks_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", "webhook_id", name=op.f("pk_integration_seen_webhooks")),
    )
    op.create_index(
        op.f("ix_integration_seen_webhooks_received_at"),
        "integration_seen_webhooks",
        ["received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_integration_seen_webhooks_received_at"), table_name="integration_seen_webhooks")
    op.drop_table("integration_seen_webhooks")
    op.drop_index(op.f("ix_integrations_organisation_id"), table_name="integrations")
    op.drop_index(op.f("ix_integrations_default_petition_id"), table_name="integrations")
    op.drop_table("integrations")
