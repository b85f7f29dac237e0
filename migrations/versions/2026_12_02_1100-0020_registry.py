"""the registry: companies (groups own brands), facilities, each field value's source; campaign targets
become companies

Campaigns' free-text ``target_companies`` become companies (one per name, ignoring case, accents and
punctuation) linked in ``campaign_targets``, in order. Where pg_trgm can be installed, trigram indexes
serve the name search (an ILIKE, which works without them too).

Revision ID: 0020
Revises: 0012
Create Date: 2026-12-02 11:00:00+00:00
"""

import re
import unicodedata
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from slugify import slugify
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSONB = postgresql.JSONB(astext_type=sa.Text())
_EMPTY = sa.text("'[]'::jsonb")
TRIGRAM_INDEXES = {"companies": "ix_companies_search_trgm", "facilities": "ix_facilities_search_trgm"}


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


# What services.core.registry.identifiers did when this migration was written (kept here as it was).
def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return re.sub(r"\s+", " ", stripped.casefold()).strip()


def _name_key(name: str) -> str:
    return (re.sub(r"[\W_]+", " ", _fold(name)).strip() or _fold(name))[:200]


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("aliases", _JSONB, server_default=_EMPTY, nullable=False),
        sa.Column(
            "kind",
            _enum(
                "company_kind",
                "brand",
                "retailer",
                "manufacturer_group",
                "manufacturer",
                "agent",
                "licensee",
                "other",
            ),
            nullable=True,
        ),
        sa.Column("hq_country", sa.String(length=2), nullable=True),
        sa.Column("website", sa.String(length=500), nullable=True),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("lei", sa.String(length=20), nullable=True),
        sa.Column("wikirate_id", sa.BigInteger(), nullable=True),
        sa.Column("os_hub_contributor_id", sa.BigInteger(), nullable=True),
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["companies.id"],
            name=op.f("fk_companies_parent_id_companies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("slug", name=op.f("uq_companies_slug")),
        sa.UniqueConstraint("name_key", name=op.f("uq_companies_name_key")),
        sa.UniqueConstraint("lei", name=op.f("uq_companies_lei")),
        sa.UniqueConstraint("wikirate_id", name=op.f("uq_companies_wikirate_id")),
        sa.UniqueConstraint("os_hub_contributor_id", name=op.f("uq_companies_os_hub_contributor_id")),
    )
    op.create_index(op.f("ix_companies_hq_country"), "companies", ["hq_country"], unique=False)
    op.create_index(op.f("ix_companies_parent_id"), "companies", ["parent_id"], unique=False)
    op.create_table(
        "facilities",
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("native_name", sa.String(length=300), nullable=True),
        sa.Column("address", sa.Text(), server_default="", nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("parent_company_id", sa.Uuid(), nullable=True),
        sa.Column(
            "facility_type",
            _enum(
                "facility_type", "production", "processing", "raw_material", "warehouse", "office", "other"
            ),
            nullable=True,
        ),
        sa.Column("processing_types", _JSONB, server_default=_EMPTY, nullable=False),
        sa.Column("product_types", _JSONB, server_default=_EMPTY, nullable=False),
        sa.Column(
            "worker_band", _enum("worker_band", "1-1000", "1001-5000", "5001-10000", "10001+"), nullable=True
        ),
        sa.Column("closed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("aliases", _JSONB, server_default=_EMPTY, nullable=False),
        sa.Column("os_id", sa.String(length=15), nullable=True),
        sa.Column("search_text", sa.Text(), server_default="", nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "(latitude IS NULL) = (longitude IS NULL)", name=op.f("ck_facilities_coordinates_together")
        ),
        sa.CheckConstraint("latitude BETWEEN -90 AND 90", name=op.f("ck_facilities_latitude_range")),
        sa.CheckConstraint("longitude BETWEEN -180 AND 180", name=op.f("ck_facilities_longitude_range")),
        sa.ForeignKeyConstraint(
            ["parent_company_id"],
            ["companies.id"],
            name=op.f("fk_facilities_parent_company_id_companies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilities")),
        sa.UniqueConstraint("os_id", name=op.f("uq_facilities_os_id")),
    )
    op.create_index("ix_facilities_country_name", "facilities", ["country", "name"], unique=False)
    op.create_index(
        op.f("ix_facilities_parent_company_id"), "facilities", ["parent_company_id"], unique=False
    )
    op.create_table(
        "registry_field_sources",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("record_type", _enum("registry_record_type", "company", "facility"), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(length=50), nullable=False),
        sa.Column("value", _JSONB, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("source_label", sa.String(length=500), nullable=True),
        sa.Column("disclosure_id", sa.Uuid(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_registry_field_sources_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_registry_field_sources_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_field_sources")),
    )
    op.create_index(
        "ix_registry_field_sources_record",
        "registry_field_sources",
        ["record_type", "record_id", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_registry_field_sources_user_id"), "registry_field_sources", ["user_id"], unique=False
    )
    op.create_table(
        "campaign_targets",
        sa.Column("campaign_id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_targets_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_campaign_targets_company_id_companies"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "company_id", name=op.f("pk_campaign_targets")),
    )
    op.create_index(op.f("ix_campaign_targets_company_id"), "campaign_targets", ["company_id"], unique=False)
    _companies_from_targets()
    op.drop_column("campaigns", "target_companies")
    _trigram_indexes()


def _companies_from_targets() -> None:
    """Each distinct target name (the first spelling met, oldest campaign first) becomes a company."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, target_companies FROM campaigns ORDER BY created_at, id")).all()
    companies: dict[str, uuid.UUID] = {}
    slugs: set[str] = set()
    new_companies: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for campaign_id, names in rows:
        linked: list[uuid.UUID] = []
        for name in names or []:
            key = _name_key(name)
            if key not in companies:
                base = slugify(name, max_length=90, word_boundary=True) or "company"
                slug, n = base, 2
                while slug in slugs:
                    slug, n = f"{base}-{n}", n + 1
                slugs.add(slug)
                companies[key] = uuid.uuid4()
                new_companies.append(
                    {"id": companies[key], "slug": slug, "name": name, "key": key, "search": _fold(name)}
                )
            if companies[key] not in linked:
                linked.append(companies[key])
        links.extend(
            {"campaign": campaign_id, "company": company, "position": position}
            for position, company in enumerate(linked)
        )
    if new_companies:
        bind.execute(
            sa.text(
                "INSERT INTO companies (id, slug, name, name_key, search_text) "
                "VALUES (:id, :slug, :name, :key, :search)"
            ),
            new_companies,
        )
        bind.execute(
            sa.text(
                "INSERT INTO registry_field_sources (record_type, record_id, field, value, source_label) "
                "VALUES ('company', :id, 'name', to_jsonb(CAST(:name AS text)), "
                "'campaign target (migration 0020)')"
            ),
            new_companies,
        )
    if links:
        bind.execute(
            sa.text(
                "INSERT INTO campaign_targets (campaign_id, company_id, position) "
                "VALUES (:campaign, :company, :position)"
            ),
            links,
        )


def _trigram_indexes() -> None:
    bind = op.get_bind()
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar()
    if not available:
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return  # no right to install it: search works without the index
    for table, index in TRIGRAM_INDEXES.items():
        bind.execute(sa.text(f"CREATE INDEX {index} ON {table} USING gin (search_text gin_trgm_ops)"))


def downgrade() -> None:
    op.add_column("campaigns", sa.Column("target_companies", _JSONB, server_default=_EMPTY, nullable=False))
    op.execute(
        "UPDATE campaigns SET target_companies = t.names FROM ("
        "SELECT ct.campaign_id, jsonb_agg(c.name ORDER BY ct.position) AS names FROM campaign_targets ct "
        "JOIN companies c ON c.id = ct.company_id GROUP BY ct.campaign_id) AS t "
        "WHERE campaigns.id = t.campaign_id"
    )
    op.drop_table("campaign_targets")
    op.drop_table("registry_field_sources")
    op.drop_table("facilities")
    op.drop_table("companies")
