"""signatures, signers, reviews, invalidations

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 07:21:33.048522+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "petition_count_refresh",
        sa.Column("petition_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"],
            ["petitions.id"],
            name=op.f("fk_petition_count_refresh_petition_id_petitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("petition_id", name=op.f("pk_petition_count_refresh")),
    )
    op.create_table(
        "signature_invalidations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("petition_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("filters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("signatures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("reverted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reverted_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_signature_invalidations_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["petition_id"],
            ["petitions.id"],
            name=op.f("fk_signature_invalidations_petition_id_petitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reverted_by"],
            ["users.id"],
            name=op.f("fk_signature_invalidations_reverted_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_invalidations")),
    )
    op.create_index(
        op.f("ix_signature_invalidations_petition_id"),
        "signature_invalidations",
        ["petition_id"],
        unique=False,
    )
    op.create_table(
        "signatures",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("petition_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum(
                "web",
                "webhook",
                "import",
                name="signature_channel",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "new",
                "unique",
                "duplicate",
                "review",
                name="signature_state",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            server_default="new",
            nullable=False,
        ),
        sa.Column("duplicate_of", sa.Uuid(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_canonical", sa.Text(), nullable=True),
        sa.Column("postal_code", sa.String(length=32), nullable=True),
        sa.Column("name_key", sa.Text(), nullable=True),
        sa.Column("postal_key", sa.String(length=32), nullable=True),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("country", sa.CHAR(length=2), nullable=True),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("opt_in", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("consent_version", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=500), nullable=True),
        sa.Column("integration_id", sa.Uuid(), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("confirmation_nonce_hash", sa.String(length=64), nullable=True),
        sa.Column("confirmation_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invalidation_id", sa.Uuid(), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["duplicate_of"],
            ["signatures.id"],
            name=op.f("fk_signatures_duplicate_of_signatures"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_signatures_integration_id_integrations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["invalidation_id"],
            ["signature_invalidations.id"],
            name=op.f("fk_signatures_invalidation_id_signature_invalidations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_signatures_organisation_id_organisations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["petition_id"],
            ["petitions.id"],
            name=op.f("fk_signatures_petition_id_petitions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signatures")),
        sa.UniqueConstraint("integration_id", "external_id", name=op.f("uq_signatures_integration_id")),
    )
    op.create_index(
        "ix_signatures_counted",
        "signatures",
        ["petition_id", "confirmed_at"],
        unique=False,
        postgresql_where=sa.text("state = 'unique' AND invalidation_id IS NULL"),
    )
    op.create_index(op.f("ix_signatures_email_canonical"), "signatures", ["email_canonical"], unique=False)
    op.create_index(
        "ix_signatures_new",
        "signatures",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("state = 'new'"),
    )
    op.create_index(
        "ix_signatures_paper",
        "signatures",
        ["petition_id", "country", "postal_key"],
        unique=False,
        postgresql_where=sa.text("email_canonical IS NULL AND state = 'unique'"),
    )
    op.create_index(
        "ix_signatures_petition_id_created_at", "signatures", ["petition_id", "created_at"], unique=False
    )
    op.create_table(
        "petition_signers",
        sa.Column("petition_id", sa.Uuid(), nullable=False),
        sa.Column("email_canonical", sa.Text(), nullable=False),
        sa.Column("signature_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["petition_id"],
            ["petitions.id"],
            name=op.f("fk_petition_signers_petition_id_petitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signature_id"],
            ["signatures.id"],
            name=op.f("fk_petition_signers_signature_id_signatures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("petition_id", "email_canonical", name=op.f("pk_petition_signers")),
    )
    op.create_index(
        op.f("ix_petition_signers_signature_id"), "petition_signers", ["signature_id"], unique=False
    )
    op.create_table(
        "signature_reviews",
        sa.Column("signature_id", sa.Uuid(), nullable=False),
        sa.Column("petition_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "resolution",
            sa.Enum(
                "duplicate",
                "distinct",
                name="signature_review_resolution",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["signatures.id"],
            name=op.f("fk_signature_reviews_candidate_id_signatures"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["petition_id"],
            ["petitions.id"],
            name=op.f("fk_signature_reviews_petition_id_petitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"],
            ["users.id"],
            name=op.f("fk_signature_reviews_resolved_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["signature_id"],
            ["signatures.id"],
            name=op.f("fk_signature_reviews_signature_id_signatures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("signature_id", name=op.f("pk_signature_reviews")),
    )
    op.create_index(
        op.f("ix_signature_reviews_petition_id"), "signature_reviews", ["petition_id"], unique=False
    )


def downgrade() -> None:

    op.drop_index(op.f("ix_signature_reviews_petition_id"), table_name="signature_reviews")
    op.drop_table("signature_reviews")
    op.drop_index(op.f("ix_petition_signers_signature_id"), table_name="petition_signers")
    op.drop_table("petition_signers")
    op.drop_index("ix_signatures_petition_id_created_at", table_name="signatures")
    op.drop_index(
        "ix_signatures_paper",
        table_name="signatures",
        postgresql_where=sa.text("email_canonical IS NULL AND state = 'unique'"),
    )
    op.drop_index("ix_signatures_new", table_name="signatures", postgresql_where=sa.text("state = 'new'"))
    op.drop_index(op.f("ix_signatures_email_canonical"), table_name="signatures")
    op.drop_index(
        "ix_signatures_counted",
        table_name="signatures",
        postgresql_where=sa.text("state = 'unique' AND invalidation_id IS NULL"),
    )
    op.drop_table("signatures")
    op.drop_index(op.f("ix_signature_invalidations_petition_id"), table_name="signature_invalidations")
    op.drop_table("signature_invalidations")
    op.drop_table("petition_count_refresh")
