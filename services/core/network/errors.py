"""Errors of the network directory, each with its own stable problem ``code``."""

from __future__ import annotations

from services.core.errors import Conflict, Forbidden, NotFound


class OrganisationNotFound(NotFound):
    code = "organisation-not-found"
    title = "Organisation not found"


class CoalitionNotFound(NotFound):
    code = "coalition-not-found"
    title = "Coalition not found"


class MembershipNotFound(NotFound):
    code = "membership-not-found"
    title = "The organisation is not a member of this coalition"


class SlugTaken(Conflict):
    code = "slug-taken"
    title = "Slug already in use"


class CoalitionNameTaken(Conflict):
    code = "coalition-name-taken"
    title = "A coalition with this name already exists"


class RegionalCoalitionProtected(Conflict):
    code = "regional-coalition-protected"
    title = "Regional coalitions cannot be deleted or renamed"


class NotYourOrganisation(Forbidden):
    code = "not-your-organisation"
    title = "You may only change your own organisation"


class FieldNotEditable(Forbidden):
    code = "field-not-editable"
    title = "You may not change these fields"


class StaffOnly(Forbidden):
    code = "staff-only"
    title = "Only network staff may see this"
