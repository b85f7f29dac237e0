"""Confirmation tokens: genuine ones round-trip; expired, tampered, foreign, replaced and used ones are
told apart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.core.config import Settings
from services.core.signatures import tokens
from services.core.users.models import Role, User
from services.core.users.security import create_refresh_token

SETTINGS = Settings(env="test", secret_key="s" * 40)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def issue(now: datetime = NOW, lifetime: timedelta = tokens.DEFAULT_LIFETIME) -> tokens.IssuedToken:
    return tokens.issue(SETTINGS, signature_id=SIGNATURE, petition_id=PETITION, now=now, lifetime=lifetime)


SIGNATURE = uuid.uuid4()
PETITION = uuid.uuid4()


def test_a_genuine_token_names_its_signature_and_petition() -> None:
    issued = issue()
    claims = tokens.read(SETTINGS, issued.token, now=NOW + timedelta(days=1))
    assert (claims.signature_id, claims.petition_id) == (SIGNATURE, PETITION)
    assert claims.nonce_hash == issued.nonce_hash
    assert claims.expires_at == issued.expires_at
    tokens.ensure_unused(claims, stored_nonce_hash=issued.nonce_hash, confirmed_at=None)


def test_expiry_is_exact_and_a_distinct_problem() -> None:
    issued = issue(lifetime=timedelta(hours=1))
    tokens.read(SETTINGS, issued.token, now=NOW + timedelta(minutes=59, seconds=59))
    with pytest.raises(tokens.ConfirmationTokenExpired) as caught:
        tokens.read(SETTINGS, issued.token, now=NOW + timedelta(hours=1))
    assert caught.value.status == 410


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: t.split(".")[0] + "." + t.split(".")[1][::-1] + "." + t.split(".")[2],  # payload changed
        lambda t: "not-a-token",
        lambda t: "",
    ],
    ids=["signature", "payload", "garbage", "empty"],
)
def test_tampered_tokens_are_invalid(mangle: object) -> None:
    token = issue().token
    with pytest.raises(tokens.ConfirmationTokenInvalid) as caught:
        tokens.read(SETTINGS, mangle(token), now=NOW)  # type: ignore[operator]
    assert caught.value.status == 400


def test_another_secret_or_another_kind_of_token_is_invalid() -> None:
    other = Settings(env="test", secret_key="o" * 40)
    with pytest.raises(tokens.ConfirmationTokenInvalid):
        tokens.read(other, issue().token, now=NOW)
    # A refresh token signed with the application secret is not a confirmation token.
    user = User(id=uuid.uuid4(), role=Role.admin, token_version=0)
    refresh, _ = create_refresh_token(SETTINGS, user)
    with pytest.raises(tokens.ConfirmationTokenInvalid):
        tokens.read(SETTINGS, refresh, now=datetime.now(UTC))
    # Nor is a token signed with the derived key but for another purpose.
    forged = jwt.encode(
        {"typ": "something-else", "sub": str(SIGNATURE), "pet": str(PETITION), "non": "n",
         "iat": int(NOW.timestamp()), "exp": int((NOW + timedelta(days=1)).timestamp())},
        tokens._key(SETTINGS),
        algorithm="HS256",
    )  # fmt: skip
    with pytest.raises(tokens.ConfirmationTokenInvalid):
        tokens.read(SETTINGS, forged, now=NOW)


def test_a_used_token_and_a_replaced_token_are_told_apart() -> None:
    first = issue()
    second = issue()
    claims = tokens.read(SETTINGS, first.token, now=NOW)
    with pytest.raises(tokens.ConfirmationTokenUsed) as used:
        tokens.ensure_unused(claims, stored_nonce_hash=first.nonce_hash, confirmed_at=NOW)
    assert used.value.status == 409
    with pytest.raises(tokens.ConfirmationTokenInvalid):
        tokens.ensure_unused(claims, stored_nonce_hash=second.nonce_hash, confirmed_at=None)
    with pytest.raises(tokens.ConfirmationTokenInvalid):
        tokens.ensure_unused(claims, stored_nonce_hash=None, confirmed_at=None)
