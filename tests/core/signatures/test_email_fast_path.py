"""The fast path of ``canonical_email`` (plain ASCII addresses checked by patterns) gives the same canonical
form and the same accept/reject decision as the full path (email-validator and idna) on every address."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.core.signatures.identity import InvalidEmail, _fast_parts, canonical_email


def outcome(raw: str, *, fast: bool) -> str | None:
    """The canonical form, or None when the address is refused."""
    try:
        return canonical_email(raw, fast=fast)
    except InvalidEmail:
        return None


def assert_same(raw: str) -> None:
    assert outcome(raw, fast=True) == outcome(raw, fast=False), repr(raw)


_ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
_LOOK_ALIKES = "аеорсхуіјѕԁɡον"  # Cyrillic, Greek and Latin letters that look like ASCII ones
_ODD = ' \t"\\(),:;<>@[]\x00\x7f.+-_'
_UNICODE = "äöüßéñçøłıİǅﬁＪａｎｅ＠．。｡①²ΣσςДЖあ中한\u0301\u200b\u200d\u00ad\u2024\ufe52"

local_chars = st.sampled_from(_ATEXT) | st.sampled_from(_LOOK_ALIKES + _ODD + _UNICODE)
local_part = st.one_of(
    st.text(st.sampled_from(_ATEXT + "."), min_size=0, max_size=70),
    st.text(local_chars, min_size=0, max_size=20),
    st.builds(
        lambda a, b: f"{a}+{b}",
        st.text(st.sampled_from(_ATEXT + "."), max_size=12),
        st.text(local_chars, max_size=8),
    ),
    st.builds(lambda a: f'"{a}"', st.text(local_chars, max_size=12)),
    st.integers(60, 68).map(lambda n: "a" * n),
)

label_chars = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
label = st.one_of(
    st.text(label_chars, min_size=0, max_size=12),
    st.text(label_chars | st.sampled_from(_LOOK_ALIKES + _UNICODE + "_."), min_size=1, max_size=8),
    st.sampled_from(
        ["xn--bcher-kva", "xn--80ak6aa92e", "xn--", "xn--a", "ab--cd", "a--b", "xn--zz-zz", "-a", "a-"]
    ),
    st.integers(61, 65).map(lambda n: "b" * n),
)
tld = st.one_of(
    st.sampled_from(
        [
            "com",
            "org",
            "co",
            "uk",
            "de",
            "museum",
            "localhost",
            "local",
            "invalid",
            "test",
            "onion",
            "arpa",
            "example",
            "internal",
            "home",
            "lan",
            "1",
            "123",
            "c0m",
            "x",
            "xn--p1ai",
            "рф",
            "中国",
            "COM",
            "a-b",
        ]
    ),
    st.text(label_chars, min_size=1, max_size=6),
)
domain = st.one_of(
    st.sampled_from(
        [
            "gmail.com",
            "googlemail.com",
            "GMAIL.com",
            "outlook.com",
            "hotmail.co.uk",
            "proton.me",
            "yahoo.com",
            "bücher.example",
            "xn--bcher-kva.example",
            "example.org",
            "mail.union.example",
            "[127.0.0.1]",
            "localhost",
            "x.invalid",
            "a.b.local",
            "1.2.3.4",
            "ｅｘａｍｐｌｅ.org",
            "example。org",
            "gmail.com.",
        ]
    ),
    st.builds(lambda labels, top: ".".join([*labels, top]), st.lists(label, min_size=0, max_size=4), tld),
)
addresses = st.one_of(
    st.builds(lambda lo, d: f"{lo}@{d}", local_part, domain),
    st.builds(
        lambda pre, lo, d, post: f"{pre}{lo}@{d}{post}",
        st.sampled_from(["", " ", "\t", "\n", "\x1c"]),
        local_part,
        domain,
        st.sampled_from(["", " ", "\r\n", "\x0b"]),
    ),
    st.builds(lambda lo, d: f"{lo}@@{d}", local_part, domain),
    st.emails().map(str),
    st.text(max_size=40),
)


@settings(max_examples=3000, deadline=None)
@given(addresses)
@example("Jane.Doe+news@GoogleMail.com")
@example("a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 61 + ".com")  # 254 characters
@example("a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 62 + ".com")  # 255 characters
@example("a" * 65 + "@example.org")
@example("x@" + ".".join(["a" * 63] * 3) + "." + "b" * 61)  # a domain of 253 characters
@example("+tag@gmail.com")
@example("jane.+tag@outlook.com")
@example("j.a.n.e@gmail.com")
@example(".jane@example.org")
@example("jane.@example.org")
@example("ja..ne@example.org")
@example("jane@example.c0m")
@example("jane@123.456")
@example("jane@a--b.example")
@example("jane@xn--bcher-kva.example")
@example("jane@xn--abc.example")
@example("jane@-bad.example")
@example("jane@exa_mple.org")
@example("jane@foo.localhost")
@example("info@example.org")
@example("jаne@example.org")  # a Cyrillic а
@example('"jane"@example.org')
@example("jane@[192.0.2.1]")
@example("Jane Doe <jane@example.org>")
def test_fast_and_full_paths_agree(raw: str) -> None:
    assert_same(raw)


@pytest.mark.parametrize(
    "raw",
    ["jane.doe@example.org", "JANE@Example.ORG", "  jane+x@gmail.com ", "o'brien@union.example", "a@b.co"],
)
def test_common_addresses_take_the_fast_path(raw: str) -> None:
    # Otherwise the test above would compare the full path with itself.
    assert _fast_parts(raw.strip().lower()) is not None
    assert_same(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "jane@bücher.example",  # Unicode
        "jane@xn--bcher-kva.example",  # Punycode: idna decides
        "jane@ab--cd.example",  # a reserved R-LDH label
        "jane@foo.localhost",  # special-use
        "jane@example.c0m",  # a top-level label that is not all letters
        '"jane"@example.org',  # quoted
        "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 62 + ".com",  # too long
    ],
)
def test_unusual_addresses_take_the_full_path(raw: str) -> None:
    assert _fast_parts(raw.strip().lower()) is None
    assert_same(raw)
