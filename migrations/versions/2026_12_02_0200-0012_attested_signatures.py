"""attested signatures (imports and integrations count without confirmation, and are mailed only on
request), and one confirmation mail a day per person and petition

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTED_WHERE = sa.text("state = 'unique' AND invalidation_id IS NULL")


def upgrade() -> None:
    op.add_column(
        "signatures", sa.Column("attested", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.add_column(
        "signatures",
        sa.Column("send_confirmation_mail", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.add_column(
        "integrations",
        sa.Column("send_confirmation_mail", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "petition_signers", sa.Column("confirmation_mailed_at", sa.DateTime(timezone=True), nullable=True)
    )
    # Existing data: imported and delivered signatures are attested and were never to be mailed; an
    # attested duplicate makes its person's counted signature count; the last link mailed to each person
    # starts their daily allowance.
    op.execute(
        "UPDATE signatures SET attested = true, send_confirmation_mail = false "
        "WHERE channel IN ('import', 'webhook')"
    )
    op.execute(
        "UPDATE signatures f SET attested = true FROM signatures d "
        "WHERE d.duplicate_of = f.id AND d.state = 'duplicate' AND d.attested AND NOT f.attested"
    )
    op.execute(
        "UPDATE petition_signers ps SET confirmation_mailed_at = m.at FROM ("
        "SELECT petition_id, email_canonical, max(confirmation_requested_at) AS at FROM signatures "
        "WHERE email_canonical IS NOT NULL AND confirmation_requested_at IS NOT NULL "
        "GROUP BY petition_id, email_canonical) AS m "
        "WHERE ps.petition_id = m.petition_id AND ps.email_canonical = m.email_canonical"
    )
    op.drop_index("ix_signatures_counted", table_name="signatures", postgresql_where=_COUNTED_WHERE)
    op.create_index(
        "ix_signatures_counted",
        "signatures",
        ["petition_id", "confirmed_at", "attested"],
        unique=False,
        postgresql_where=_COUNTED_WHERE,
    )
    # Every petition with attested signatures counts differently now.
    op.execute(
        "INSERT INTO petition_count_refresh (petition_id) "
        "SELECT DISTINCT petition_id FROM signatures WHERE attested"
    )


def downgrade() -> None:
    op.drop_index("ix_signatures_counted", table_name="signatures", postgresql_where=_COUNTED_WHERE)
    op.create_index(
        "ix_signatures_counted",
        "signatures",
        ["petition_id", "confirmed_at"],
        unique=False,
        postgresql_where=_COUNTED_WHERE,
    )
    op.drop_column("petition_signers", "confirmation_mailed_at")
    op.drop_column("integrations", "send_confirmation_mail")
    op.drop_column("signatures", "send_confirmation_mail")
    op.drop_column("signatures", "attested")
