"""Signers' names: names of every script pass; anything that could carry a message of its own (line
breaks, invisible characters, addresses, phone numbers, over-long text) is refused — and whatever the name,
the mail to the signer says nothing but Loom's own text, with at most that checked name in it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from services.core.config import Settings
from services.core.mail import messages
from services.core.mail.rendering import render
from services.core.signatures.names import MAX_NAME_LENGTH, check_name, name_for_mail

PHISHING = "X\nURGENT: your bank account is locked, log in at http://bank-secure.example.com/login"

VALID = [
    "Jane Doe",
    "Mary O'Neil",
    "Mary O’Neil",
    "O´Brien",
    "Jean-Luc Picard",
    "J.R.R. Tolkien",
    "Dr. Martin Luther King Jr.",
    "A.Kim",  # an initial before the dot, not a domain anyone can register
    "Smith, John",
    "José (Pepe) García",
    "Nguyễn Thị Minh Khai",
    "Zoë Saldaña",
    "মোঃ আব্দুর রহমান",  # Bengali
    "সুমাইয়া আক্তার",
    "សុខ ចាន់ធី",  # Khmer
    "李小龍",  # Chinese
    "王·小明",  # a transliterated name's middle dot
    "ジョン・スミス",  # Japanese katakana with its middle dot
    "محمد بن سلمان",  # Arabic
    "فاطمه‌زهرا",  # Persian, with the zero-width non-joiner its spelling needs
    "ශ්‍රී ලංකා",  # Sinhala, with a zero-width joiner
    "बीना दास",  # Devanagari
    "Ли Мария",  # Cyrillic
    "בנימין נתן",  # Hebrew
    "བཀྲ་ཤིས་",  # Tibetan, with its syllable separator
    "ጌታቸው፡ረዳ",  # Ethiopic wordspace
    "x" * MAX_NAME_LENGTH,
]

INVALID = {
    "phishing": PHISHING,
    "carriage return": "Jane\rDoe",
    "tab": "Jane\tDoe",
    "next line": "Jane\x85Doe",
    "line separator": "Jane\u2028Doe",
    "paragraph separator": "Jane\u2029Doe",
    "NUL": "Jane\x00Doe",
    "right-to-left override": "Jane \u202eeoD",
    "zero-width space": "Jane\u200bDoe",
    "a joiner outside a word": "\u200dJane",
    "word joiner": "Jane\u2060Doe",
    "tag characters": "Jane\U000e0041Doe",
    "private use": "Jane\ue000Doe",
    "unassigned": "Jane\U000e0fffDoe",
    "URL": "http://evil.example",
    "domain": "evil.com",
    "domain in a sentence": "Visit bank-secure.com now",
    "country-code domain": "pay.example.co.uk",
    "IDN domain": "пример.рф",
    "full-width domain": "ｅｖｉｌ．ｃｏｍ",
    "ideographic full stop": "evil。com",
    "one-dot leader": "evil․com",
    "two letters before the dot": "Jo.Kim",
    "email": "support@evil.com",
    "phone number": "call 0800 123 456",
    "Bengali digits": "রহিম ০১৭১১",
    "emoji": "Jane 😀",
    "currency": "Jane $",
    "markup": "<b>Jane</b>",
    "colon": "URGENT: Jane",
    "full-width colon": "URGENT： Jane",
    "too long": "x" * (MAX_NAME_LENGTH + 1),
    "no letters": "...",
    "blank": "   ",
}


@pytest.mark.parametrize("name", VALID)
def test_names_of_every_script_are_valid(name: str) -> None:
    assert check_name(name) == name
    assert name_for_mail(name) == name


@pytest.mark.parametrize("name", list(INVALID.values()), ids=list(INVALID))
def test_names_that_could_carry_a_message_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="a name") as refused:
        check_name(name)
    assert name.strip() not in str(refused.value) or not name.strip()  # the reason never repeats the name
    assert name_for_mail(name) is None


def test_spaces_are_trimmed_and_runs_of_them_made_one() -> None:
    assert check_name("  Jane \u00a0 \u3000Doe ") == "Jane Doe"


# --- what mail can contain --------------------------------------------------------------------------------

_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
SETTINGS = Settings(env="test", secret_key="test-secret-key-that-is-long-enough-for-hs256")
CONFIRM_URL = "http://127.0.0.1:8000/confirm?token=t0k3n"
SHARE_URL = "http://127.0.0.1:8000/petitions/pay-up"


def _mails(name: str | None, language: str) -> list[tuple[str, str, str]]:
    """The confirmation and thank-you mails for a signer called ``name``: (subject, text, HTML)."""
    confirmation = messages.confirmation_context(
        SETTINGS, name=name, petition_title="Pay Up", campaign_title="Clean Clothes", token="t0k3n"
    )
    thank_you = messages.thank_you_context(
        SETTINGS, name=name, petition_title="Pay Up", campaign_title="Clean Clothes", slug="pay-up"
    )
    rendered = [
        render(messages.CONFIRMATION, confirmation, language=language),
        render(messages.THANK_YOU, thank_you, language=language),
    ]
    return [(r.subject, r.text_body, r.html_body or "") for r in rendered]


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.one_of(
        st.text(max_size=150),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=150).map(lambda s: f"Ana {s}"),
        st.from_regex(r"[A-Za-z]{1,12}[ .\n]{0,3}[a-z]{1,10}\.(com|org|co\.uk|xyz)", fullmatch=True),
    ),
    language=st.sampled_from(["en", "fr", "es"]),
)
@example(name=PHISHING, language="en")
@example(name="Jane\u2028Call 0800 123 456", language="fr")
def test_mail_holds_loom_text_and_at_most_a_checked_name(name: str, language: str) -> None:
    """Whatever name a signer gives, their mail is the no-name mail with, at most, a valid name on the
    greeting line: no other line changes, no link but Loom's."""
    accepted = name_for_mail(name)
    for (subject, text, html), (bare_subject, bare_text, bare_html) in zip(
        _mails(name, language), _mails(None, language), strict=True
    ):
        assert subject == bare_subject
        lines, bare_lines = text.splitlines(), bare_text.splitlines()
        assert len(lines) == len(bare_lines)
        changed = [i for i, (a, b) in enumerate(zip(lines, bare_lines, strict=True)) if a != b]
        assert changed == ([0] if accepted else [])
        assert set(_URL.findall(text)) <= {CONFIRM_URL, SHARE_URL}
        if accepted is None:
            assert html == bare_html
        else:
            assert accepted in lines[0]
            assert html.count("\n") == bare_html.count("\n")


def _walked(value: str) -> str:
    """check_name as it was before the plain-ASCII shortcut and the per-character cache: every character
    judged with its neighbours, then the domain rule."""
    from services.core.signatures import names

    chars = value.strip()
    for index, char in enumerate(chars):
        before = chars[index - 1] if index else ""
        after = chars[index + 1] if index + 1 < len(chars) else ""
        reason = names._refusal(char, before, after)
        if reason:
            raise ValueError(f"a name {reason}")
    name = names._SPACES.sub(" ", chars)
    if not name:
        raise ValueError("a name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a name has at most {MAX_NAME_LENGTH} characters")
    if not any(unicodedata.category(c)[0] == "L" for c in name):
        raise ValueError("a name needs letters")
    if names._looks_like_a_domain(name):
        raise ValueError("a name must not look like a web address (write initials with a space: 'J. Doe')")
    return name


def _verdict(check: Callable[[str], str], value: str) -> str:
    try:
        return "ok: " + check(value)
    except ValueError as exc:
        return f"refused: {exc}"


_NAME_CHARS = (
    st.sampled_from("abcXYZ '-.,\t\n\u200c\u200d\u00e9\u0301\u3002\uff0e7@`´·\u00a0") | st.characters()
)


@hypothesis_settings(max_examples=1500, deadline=None)
@given(st.text(_NAME_CHARS, max_size=110))
@example("Jane Doe")
@example("  Mary-Jane  O'Neil ")
@example("evil.com")
@example("a" * 101)
@example("' -")
@example("")
def test_the_shortcuts_give_the_verdict_of_the_full_walk(value: str) -> None:
    assert _verdict(check_name, value) == _verdict(_walked, value)
