"""recount requests: one row per request, so none is merged into one a recount is already taking

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("pk_petition_count_refresh", "petition_count_refresh", type_="primary")
    op.add_column(
        "petition_count_refresh",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
    )
    op.create_primary_key("pk_petition_count_refresh", "petition_count_refresh", ["id"])


def downgrade() -> None:
    op.execute(
        "DELETE FROM petition_count_refresh r USING petition_count_refresh o "
        "WHERE r.petition_id = o.petition_id AND r.id > o.id"
    )
    op.drop_constraint("pk_petition_count_refresh", "petition_count_refresh", type_="primary")
    op.drop_column("petition_count_refresh", "id")
    op.create_primary_key("pk_petition_count_refresh", "petition_count_refresh", ["petition_id"])
