"""Imports every model so ``Base.metadata`` is complete (Alembic, tests)."""

from services.core.campaigns.models import Campaign, CampaignPartner, Petition, PetitionConsentVersion
from services.core.db.base import Base
from services.core.integrations.models import Integration, SeenWebhook
from services.core.mail.models import EmailMessage, Suppression
from services.core.milestones.models import PetitionMilestone
from services.core.network.models import Coalition, CoalitionMembership, Organisation
from services.core.outbox.models import OutboxJob
from services.core.registry.models import (
    Company,
    Disclosure,
    DisclosureRow,
    Facility,
    FieldSource,
    MatchDecision,
    SourcingLink,
)
from services.core.signatures.models import (
    PetitionCountRefresh,
    PetitionSigner,
    Signature,
    SignatureInvalidation,
    SignatureReview,
)
from services.core.updates.models import CampaignUpdate
from services.core.users.models import ApiKey, User
from services.core.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

__all__ = [
    "ApiKey",
    "Base",
    "Campaign",
    "CampaignPartner",
    "CampaignUpdate",
    "Coalition",
    "CoalitionMembership",
    "Company",
    "Disclosure",
    "DisclosureRow",
    "EmailMessage",
    "Facility",
    "FieldSource",
    "Integration",
    "MatchDecision",
    "Organisation",
    "OutboxJob",
    "Petition",
    "PetitionConsentVersion",
    "PetitionCountRefresh",
    "PetitionMilestone",
    "PetitionSigner",
    "SeenWebhook",
    "Signature",
    "SignatureInvalidation",
    "SignatureReview",
    "SourcingLink",
    "Suppression",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
