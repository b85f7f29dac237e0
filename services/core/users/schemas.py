"""What the users domain reads and returns: users, tokens, API keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    computed_field,
)

from services.core.schemas import EMAIL_PATTERN, NOT_BLANK, Instant, Patch
from services.core.users.models import Role
from services.core.users.scopes import Scope

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 256

Email = Annotated[
    EmailStr,
    Field(max_length=320, examples=["organiser@example.org"], json_schema_extra={"pattern": EMAIL_PATTERN}),
]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
NewPassword = Annotated[
    str, StringConstraints(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
]
_PASSWORD_RULE = f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters."
_REAUTHENTICATION = (
    "Your own password, needed to create an admin or make someone one, to change an admin's email or "
    "password, and to change your own: a stolen access token alone cannot take an admin account over."
)


def _current_password() -> Any:
    return Field(default=None, max_length=PASSWORD_MAX_LENGTH, repr=False, description=_REAUTHENTICATION)


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        # What the service checks, said in the schema: partners belong to an organisation, nobody else does.
        json_schema_extra={
            "if": {"properties": {"role": {"const": Role.partner.value}}, "required": ["role"]},
            "then": {"required": ["organisation_id"], "properties": {"organisation_id": {"type": "string"}}},
            "else": {"properties": {"organisation_id": {"type": "null"}}},
        },
    )

    email: Email
    full_name: FullName = ""
    role: Role
    organisation_id: uuid.UUID | None = Field(
        default=None, description="Required for partners (the organisation they act for); null otherwise."
    )
    password: NewPassword = Field(repr=False, description=_PASSWORD_RULE)
    current_password: str | None = _current_password()


class UserUpdate(Patch):
    """Only the fields sent are changed. Changing the password, role or organisation, or deactivating,
    signs the user out everywhere (their refresh tokens stop working)."""

    NULLABLE = frozenset({"organisation_id"})

    email: Email | None = None
    full_name: FullName | None = None
    role: Role | None = None
    organisation_id: uuid.UUID | None = Field(
        default=None, description="Send null to clear it (when the role is no longer partner)."
    )
    is_active: bool | None = None
    password: NewPassword | None = Field(
        default=None, repr=False, description=f"Resets the user's password: {_PASSWORD_RULE}"
    )
    current_password: str | None = _current_password()


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    organisation_id: uuid.UUID | None
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class UserPage(BaseModel):
    items: list[UserRead]
    total: int = Field(description="How many users match the filters, over all pages.")
    limit: int
    offset: int


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=PASSWORD_MAX_LENGTH, repr=False)
    new_password: NewPassword = Field(repr=False, description=_PASSWORD_RULE)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096, repr=False)


class TokenResponse(BaseModel):
    """An OAuth2 token response (RFC 6749 §5.1) plus a refresh token's lifetime."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Send to `POST /v1/auth/refresh` for a new pair of tokens.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")


def _future(value: datetime | None) -> datetime | None:
    if value is not None and value <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return value


def _unique_scopes(value: list[Scope]) -> list[Scope]:
    return sorted(set(value))


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NOT_BLANK)
    ] = Field(examples=["Action Network webhook"])
    scopes: Annotated[list[Scope], AfterValidator(_unique_scopes)] = Field(
        min_length=1, description="What the key may do; see the list of scopes in the API description."
    )
    organisation_id: uuid.UUID | None = Field(
        default=None,
        description="Bind the key to an organisation: it then acts as a partner of it, and only for it.",
    )
    expires_at: Annotated[Instant | None, AfterValidator(_future)] = Field(
        default=None,
        description="When the key stops working, in the future (with a time zone); never if null.",
    )


class ApiKeyRead(BaseModel):
    """An API key without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters (`loom_<prefix>_…`), to recognise it.")
    scopes: list[str]
    organisation_id: uuid.UUID | None
    created_by_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_active(self) -> bool:
        """Neither revoked nor expired."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > datetime.now(UTC))


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret key. Shown only now: store it safely. Send it as `X-API-Key`.")


class ApiKeyPage(BaseModel):
    items: list[ApiKeyRead]
    total: int
    limit: int
    offset: int
