"""Errors of the registry, each with its own stable problem ``code``."""

from __future__ import annotations

from services.core.errors import Conflict, LoomError, NotFound


class CompanyNotFound(NotFound):
    code = "company-not-found"
    title = "Company not found"


class ParentCompanyNotFound(LoomError):
    status = 422
    code = "parent-company-not-found"
    title = "The parent company named does not exist"


class FacilityNotFound(NotFound):
    code = "facility-not-found"
    title = "Facility not found"


class CompanySlugTaken(Conflict):
    code = "company-slug-taken"
    title = "Another company already uses this slug"


class CompanyNameTaken(Conflict):
    code = "company-name-taken"
    title = "A company with this name already exists"


class CompanyIdentifierTaken(Conflict):
    code = "company-identifier-taken"
    title = "Another company already has this identifier"


class CompanyParentCycle(Conflict):
    code = "company-parent-cycle"
    title = "A company cannot be owned by itself or by a company it owns"


class OsIdTaken(Conflict):
    code = "os-id-taken"
    title = "Another facility already has this OS ID"


class TargetCompanyNotFound(LoomError):
    status = 422
    code = "target-company-not-found"
    title = "A company named among the targets does not exist"


class CoordinatesIncomplete(LoomError):
    status = 422
    code = "coordinates-incomplete"
    title = "A facility has both latitude and longitude, or neither"


class DisclosureNotFound(NotFound):
    code = "disclosure-not-found"
    title = "Disclosure not found"


class DisclosureDuplicate(Conflict):
    code = "disclosure-duplicate"
    title = "This company's list was already uploaded with the same content"


class DisclosureTooLarge(LoomError):
    status = 413
    code = "disclosure-too-large"
    title = "The supplier list is larger than accepted"


class DisclosureUnreadable(LoomError):
    status = 422
    code = "disclosure-unreadable"
    title = "The supplier list cannot be read"


class DisclosureTooManyRows(LoomError):
    status = 422
    code = "disclosure-too-many-rows"
    title = "The supplier list has more rows than accepted"


class ReviewNotFound(NotFound):
    code = "review-not-found"
    title = "No row waits for review under this id"


class ReviewFacilityNotFound(LoomError):
    status = 422
    code = "review-facility-not-found"
    title = "The facility named for the row does not exist"
