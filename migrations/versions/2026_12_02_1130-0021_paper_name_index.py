"""paper signatures without a postal code are matched by name through an index of their own

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 11:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The pipeline looks up a paper signature without a postal code by petition, country and normalised
    # name: on ix_signatures_paper (petition, country, postal code) that read every counted paper
    # signature of the country for each one, quadratic over an import of such signatures.
    op.create_index(
        "ix_signatures_paper_name",
        "signatures",
        ["petition_id", "country", "name_key"],
        postgresql_where=sa.text("email_canonical IS NULL AND state = 'unique'"),
    )


def downgrade() -> None:
    op.drop_index("ix_signatures_paper_name", table_name="signatures")
