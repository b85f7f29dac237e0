"""Request bodies shared by the campaign API tests."""

from __future__ import annotations

from typing import Any


def new_campaign(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "default_language": "en",
        "translations": {
            "en": {"title": "Pay Your Workers", "summary": "Wages owed.", "body": "# Pay up"},
            "fr": {"title": "Payez vos travailleurs", "summary": "Salaires dus.", "body": "# Payez"},
            "pt-br": {"title": "Paguem seus trabalhadores"},
        },
        "demands": ["Pay the wages owed", "Sign a severance guarantee fund"],
        "target_companies": ["Example Sportswear", "Another Brand"],
    }
    body.update(fields)
    return body


def new_petition(campaign: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "campaign": campaign,
        "default_language": "en",
        "translations": {"en": {"title": "Sign for the workers"}, "de": {"title": "Unterschreiben"}},
        "goal": 10_000,
        "consent_text": "I agree to my signature being shown to the companies.",
    }
    body.update(fields)
    return body
