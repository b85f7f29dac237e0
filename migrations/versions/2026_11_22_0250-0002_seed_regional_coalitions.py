"""seed the network's regional coalitions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REGIONAL = [
    ("Europe", "europe", "Europe"),
    ("South Asia", "south-asia", "South Asia"),
    ("South East Asia", "south-east-asia", "South East Asia"),
    ("East Asia", "east-asia", "East Asia"),
]


def upgrade() -> None:
    for name, slug, region in REGIONAL:
        op.execute(
            sa.text(
                "INSERT INTO coalitions (id, name, slug, region, is_regional) "
                "VALUES (gen_random_uuid(), :name, :slug, :region, true)"
            ).bindparams(name=name, slug=slug, region=region)
        )


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM coalitions WHERE is_regional AND slug = ANY(:slugs)").bindparams(
            slugs=[slug for _, slug, _ in REGIONAL]
        )
    )
