"""verify_webhook against signatures made by the standardwebhooks package, and replay bookkeeping."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from services.core.integrations.errors import (
    WebhookHeadersMalformed,
    WebhookHeadersMissing,
    WebhookSignatureInvalid,
    WebhookTimestampOutOfTolerance,
)
from services.core.integrations.models import Integration
from services.core.integrations.webhooks import (
    generate_secret,
    remember_webhook_id,
    sign_webhook,
    valid_secrets,
    verify_webhook,
)

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
BODY = b'{"signatures": [{"external_id": "an-1", "email": "jane@example.org"}]}'
SECRET = generate_secret()
OTHER = generate_secret()


def package_headers(
    secret: str, body: bytes = BODY, at: datetime = NOW, msg_id: str = "msg_1"
) -> dict[str, str]:
    """Headers signed by the standardwebhooks package itself (not by Loom's helper)."""
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def test_secrets_have_the_standard_form() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 64
    assert secret != generate_secret()
    with pytest.raises(ValueError, match="24 to 64"):
        generate_secret(16)


def test_a_valid_delivery_passes() -> None:
    assert verify_webhook([SECRET], package_headers(SECRET), BODY, NOW) == "msg_1"


def test_the_package_accepts_loom_signatures() -> None:
    headers = sign_webhook(SECRET, "msg_2", datetime.now(UTC), BODY)
    assert headers == package_headers(
        SECRET, at=datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC), msg_id="msg_2"
    )
    Webhook(SECRET).verify(BODY, headers, json_parse=False)


def test_header_names_are_case_insensitive() -> None:
    headers = {k.title(): v for k, v in package_headers(SECRET).items()}
    assert verify_webhook([SECRET], headers, BODY, NOW) == "msg_1"


def test_a_tampered_body_fails() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook([SECRET], package_headers(SECRET), BODY.replace(b"an-1", b"an-2"), NOW)


def test_a_tampered_id_fails() -> None:
    headers = package_headers(SECRET) | {"webhook-id": "msg_other"}
    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook([SECRET], headers, BODY, NOW)


def test_a_wrong_secret_fails() -> None:
    with pytest.raises(WebhookSignatureInvalid) as caught:
        verify_webhook([SECRET], package_headers(OTHER), BODY, NOW)
    assert caught.value.status == 401
    assert caught.value.code == "webhook-signature-invalid"


def test_any_valid_secret_passes() -> None:
    assert verify_webhook([SECRET, OTHER], package_headers(OTHER), BODY, NOW) == "msg_1"


@pytest.mark.parametrize("offset", [timedelta(minutes=-5), timedelta(minutes=5), timedelta(0)])
def test_five_minutes_either_way_pass(offset: timedelta) -> None:
    assert verify_webhook([SECRET], package_headers(SECRET, at=NOW + offset), BODY, NOW) == "msg_1"


@pytest.mark.parametrize("offset", [timedelta(minutes=-5, seconds=-1), timedelta(minutes=5, seconds=1)])
def test_old_and_future_timestamps_fail(offset: timedelta) -> None:
    with pytest.raises(WebhookTimestampOutOfTolerance) as caught:
        verify_webhook([SECRET], package_headers(SECRET, at=NOW + offset), BODY, NOW)
    assert caught.value.status == 401
    assert caught.value.code == "webhook-timestamp-out-of-tolerance"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_fail(missing: str) -> None:
    headers = {k: v for k, v in package_headers(SECRET).items() if k != missing}
    with pytest.raises(WebhookHeadersMissing) as caught:
        verify_webhook([SECRET], headers, BODY, NOW)
    assert caught.value.status == 400
    assert caught.value.code == "webhook-headers-missing"
    with pytest.raises(WebhookHeadersMissing):
        verify_webhook([SECRET], headers | {missing: ""}, BODY, NOW)


def test_a_malformed_timestamp_fails() -> None:
    headers = package_headers(SECRET) | {"webhook-timestamp": "yesterday"}
    with pytest.raises(WebhookHeadersMalformed):
        verify_webhook([SECRET], headers, BODY, NOW)


def test_one_valid_signature_among_several_passes() -> None:
    good = package_headers(SECRET)["webhook-signature"]
    bad = package_headers(OTHER)["webhook-signature"]
    headers = package_headers(SECRET) | {"webhook-signature": f"{bad} v2,abc garbage v1,!!! {good}"}
    assert verify_webhook([SECRET], headers, BODY, NOW) == "msg_1"


def test_only_invalid_signatures_fail() -> None:
    bad = package_headers(OTHER)["webhook-signature"]
    headers = package_headers(SECRET) | {"webhook-signature": f"{bad} v1,!!! v1a,{bad[3:]}"}
    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook([SECRET], headers, BODY, NOW)


def test_a_body_that_is_not_utf8_fails() -> None:
    with pytest.raises(WebhookSignatureInvalid):
        verify_webhook([SECRET], package_headers(SECRET), b"\xff\xfe", NOW)


def test_valid_secrets_within_and_after_grace() -> None:
    integration = Integration(
        name="AN", secret=SECRET, previous_secret=OTHER, previous_secret_expires_at=NOW + timedelta(hours=1)
    )
    assert valid_secrets(integration, NOW) == [SECRET, OTHER]
    assert valid_secrets(integration, NOW + timedelta(hours=1)) == [SECRET]
    assert valid_secrets(Integration(name="AN", secret=SECRET), NOW) == [SECRET]


async def test_remember_webhook_id(db: AsyncSession) -> None:
    first = Integration(name="First", secret=generate_secret())
    second = Integration(name="Second", secret=generate_secret())
    db.add_all([first, second])
    await db.flush()

    assert await remember_webhook_id(db, first.id, "msg_1") is True
    assert await remember_webhook_id(db, first.id, "msg_1") is False
    assert await remember_webhook_id(db, second.id, "msg_1") is True
    assert await remember_webhook_id(db, first.id, "msg_2") is True
