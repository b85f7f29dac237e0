"""public read generations: a sequence per domain, bumped and announced by every write

Every statement that changes what a public read shows takes the next value of its domain's sequence and
announces it with ``NOTIFY loom_generations`` (sent when its transaction commits). Each API process
listens and drops its cached public answers of that domain (docs/caching.md). Triggers, not application
code, so every write path counts: the API, the worker, the CLI, migrations and psql alike.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 12:00:00+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# domain -> (tables, events). New signatures are inserted uncounted (state 'new'): only the worker's
# UPDATEs (and erasures) change what the public figures show, so an INSERT there bumps nothing.
DOMAINS: dict[str, tuple[tuple[str, ...], str]] = {
    "network": (("organisations", "coalitions", "coalition_memberships"), "INSERT OR UPDATE OR DELETE"),
    "campaigns": (
        ("campaigns", "campaign_partners", "campaign_targets", "petitions", "petition_consent_versions"),
        "INSERT OR UPDATE OR DELETE",
    ),
    "registry": (("companies", "facilities"), "INSERT OR UPDATE OR DELETE"),
    "signatures": (("signatures",), "UPDATE OR DELETE"),
}


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION loom_bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify(
                'loom_generations',
                TG_ARGV[0] || ' ' || nextval('loom_generation_' || TG_ARGV[0])::text
            );
            RETURN NULL;
        END
        $$
        """
    )
    for domain, (tables, events) in DOMAINS.items():
        op.execute(f"CREATE SEQUENCE loom_generation_{domain}")
        for table in tables:
            for kind, when in ((events, "EACH STATEMENT"), ("TRUNCATE", "EACH STATEMENT")):
                op.execute(
                    f"CREATE TRIGGER loom_generation_{'truncate' if kind == 'TRUNCATE' else 'write'} "
                    f"AFTER {kind} ON {table} FOR {when} "
                    f"EXECUTE FUNCTION loom_bump_generation('{domain}')"
                )


def downgrade() -> None:
    for domain, (tables, _) in DOMAINS.items():
        for table in tables:
            op.execute(f"DROP TRIGGER loom_generation_write ON {table}")
            op.execute(f"DROP TRIGGER loom_generation_truncate ON {table}")
        op.execute(f"DROP SEQUENCE loom_generation_{domain}")
    op.execute("DROP FUNCTION loom_bump_generation()")
