"""supplier-list disclosures: the uploaded snapshots, their rows, remembered match decisions and the
sourcing links between companies and facilities; field sources get their disclosure foreign key

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 12:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disclosures",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("retrieved_on", sa.Date(), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=True),
        sa.Column(
            "format",
            sa.Enum(
                "csv",
                "xlsx",
                "json",
                name="disclosure_format",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("machine_readable", sa.Boolean(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "processing",
                "processed",
                "failed",
                name="disclosure_state",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("rows_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cursor", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("uploaded_by", sa.Uuid(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_disclosures_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by"], ["users.id"], name=op.f("fk_disclosures_uploaded_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosures")),
        sa.UniqueConstraint("company_id", "sha256", name="uq_disclosures_company_id_sha256"),
    )
    op.create_index(op.f("ix_disclosures_company_id"), "disclosures", ["company_id"], unique=False)
    op.create_table(
        "disclosure_decisions",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("row_key", sa.String(length=64), nullable=False),
        sa.Column("facility_id", sa.Uuid(), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "pending",
                "invalid",
                "matched",
                "review",
                "created",
                "confirmed",
                "rejected",
                name="disclosure_row_outcome",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("disclosure_id", sa.Uuid(), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_disclosure_decisions_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name=op.f("fk_disclosure_decisions_decided_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["disclosure_id"],
            ["disclosures.id"],
            name=op.f("fk_disclosure_decisions_disclosure_id_disclosures"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_disclosure_decisions_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "row_key", name=op.f("pk_disclosure_decisions")),
    )
    op.create_table(
        "disclosure_rows",
        sa.Column("disclosure_id", sa.Uuid(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("row_key", sa.String(length=64), nullable=True),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("problems", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "pending",
                "invalid",
                "matched",
                "review",
                "created",
                "confirmed",
                "rejected",
                name="disclosure_row_outcome",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "method",
            sa.Enum(
                "exact",
                "fuzzy",
                "decision",
                name="disclosure_match_method",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("facility_id", sa.Uuid(), nullable=True),
        sa.Column("candidate_id", sa.Uuid(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["facilities.id"],
            name=op.f("fk_disclosure_rows_candidate_id_facilities"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.id"],
            name=op.f("fk_disclosure_rows_decided_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["disclosure_id"],
            ["disclosures.id"],
            name=op.f("fk_disclosure_rows_disclosure_id_disclosures"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_disclosure_rows_facility_id_facilities"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("disclosure_id", "row_number", name=op.f("pk_disclosure_rows")),
    )
    op.create_index(
        "ix_disclosure_rows_review",
        "disclosure_rows",
        ["outcome"],
        unique=False,
        postgresql_where=sa.text("outcome = 'review'"),
    )
    op.create_table(
        "sourcing_links",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("facility_id", sa.Uuid(), nullable=False),
        sa.Column("first_disclosure_id", sa.Uuid(), nullable=True),
        sa.Column("last_disclosure_id", sa.Uuid(), nullable=True),
        sa.Column("first_seen", sa.Date(), nullable=False),
        sa.Column("last_seen", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_sourcing_links_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_sourcing_links_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["first_disclosure_id"],
            ["disclosures.id"],
            name=op.f("fk_sourcing_links_first_disclosure_id_disclosures"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["last_disclosure_id"],
            ["disclosures.id"],
            name=op.f("fk_sourcing_links_last_disclosure_id_disclosures"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("company_id", "facility_id", name=op.f("pk_sourcing_links")),
    )
    op.create_index(op.f("ix_sourcing_links_facility_id"), "sourcing_links", ["facility_id"], unique=False)
    op.create_foreign_key(
        op.f("fk_registry_field_sources_disclosure_id_disclosures"),
        "registry_field_sources",
        "disclosures",
        ["disclosure_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_registry_field_sources_disclosure_id_disclosures"),
        "registry_field_sources",
        type_="foreignkey",
    )
    op.drop_index(op.f("ix_sourcing_links_facility_id"), table_name="sourcing_links")
    op.drop_table("sourcing_links")
    op.drop_index(
        "ix_disclosure_rows_review",
        table_name="disclosure_rows",
        postgresql_where=sa.text("outcome = 'review'"),
    )
    op.drop_table("disclosure_rows")
    op.drop_table("disclosure_decisions")
    op.drop_index(op.f("ix_disclosures_company_id"), table_name="disclosures")
    op.drop_table("disclosures")
