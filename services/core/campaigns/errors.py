"""Errors of campaigns and petitions, each with its own stable problem ``code``."""

from __future__ import annotations

from services.core.errors import Conflict, LoomError, NotFound


class CampaignNotFound(NotFound):
    code = "campaign-not-found"
    title = "Campaign not found"


class PetitionNotFound(NotFound):
    code = "petition-not-found"
    title = "Petition not found"


class PartnerOrganisationNotFound(NotFound):
    code = "partner-organisation-not-found"
    title = "A partner organisation does not exist"


class CampaignSlugTaken(Conflict):
    code = "slug-taken"
    title = "Slug already in use"


class InvalidTransition(Conflict):
    code = "invalid-transition"
    title = "The campaign cannot move to this status from its current one"


class CampaignArchived(Conflict):
    code = "campaign-archived"
    title = "Archived campaigns and their petitions cannot change"


class PetitionClosed(Conflict):
    code = "petition-closed"
    title = "The petition is not open for signing"


class DefaultLanguageMissing(LoomError):
    status = 422
    code = "default-language-missing"
    title = "The translations must include the default language"


class InvalidSigningWindow(LoomError):
    status = 422
    code = "invalid-signing-window"
    title = "A petition must close after it opens"


class DuplicatePartner(LoomError):
    status = 422
    code = "duplicate-partner"
    title = "An organisation is listed twice among the partners"
