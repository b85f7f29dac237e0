"""Errors of campaign updates, each with its own stable problem ``code``."""

from __future__ import annotations

from services.core.errors import Conflict, LoomError, NotFound


class UpdateNotFound(NotFound):
    code = "update-not-found"
    title = "Campaign update not found"


class UpdateAlreadySent(Conflict):
    code = "update-already-sent"
    title = "This update is being sent or was sent: it cannot be sent again or changed"


class UpdateDefaultLanguageMissing(LoomError):
    status = 422
    code = "update-default-language-missing"
    title = "The update must have a subject and body in the campaign's default language"


class NoOwnEmail(LoomError):
    status = 422
    code = "no-own-email"
    title = "A test is sent to the signed-in user's own email; this caller has none"
