"""Errors of the users domain (staff users, tokens, API keys)."""

from __future__ import annotations

from services.core.errors import BadRequest, Conflict, Forbidden, LoomError, NotFound


class Unprocessable(LoomError):
    """Well-formed input that breaks a rule (422, like schema validation errors)."""

    status = 422
    code = "unprocessable"
    title = "Unprocessable request"


class EmailTaken(Conflict):
    code = "email-taken"
    title = "A user with this email already exists"


class UserNotFound(NotFound):
    code = "user-not-found"
    title = "User not found"


class ApiKeyNotFound(NotFound):
    code = "api-key-not-found"
    title = "API key not found"


class InvalidUserData(Unprocessable):
    """A partner without an organisation, a coordinator with one..."""

    code = "invalid-user"
    title = "Invalid user"


class UnknownOrganisation(Unprocessable):
    code = "unknown-organisation"
    title = "No organisation has this id"


class IncorrectPassword(BadRequest):
    code = "incorrect-password"
    title = "The current password is incorrect"


class CurrentPasswordRequired(Forbidden):
    """A change that would hand over an admin's power for good, asked without the caller's password."""

    code = "current-password-required"
    title = "Your current password is required for this change"


class SelfModification(Conflict):
    code = "self-modification"
    title = "You cannot do this to your own account"
