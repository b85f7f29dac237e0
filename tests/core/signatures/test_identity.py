"""The pure identity rules of deduplication: canonical emails, normalised names, paper-signature matching."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.core.signatures.identity import (
    AUTO_MERGE_THRESHOLD,
    REVIEW_THRESHOLD,
    InvalidEmail,
    MatchDecision,
    PaperIdentity,
    canonical_email,
    email_domain,
    match_paper_signature,
    name_similarity,
    normalised_country,
    normalised_name,
    normalised_postal_code,
)

# --------------------------------------------------------------------------------------------------------
# canonical_email
# --------------------------------------------------------------------------------------------------------


def test_the_three_spellings_of_the_issue_are_one_person() -> None:
    spellings = ["Jane.Doe+x@GMail.com", "janedoe@gmail.com", "JANEDOE@googlemail.com"]
    assert {canonical_email(s) for s in spellings} == {"janedoe@gmail.com"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # trimming and case
        ("  Jane@Example.ORG\t", "jane@example.org"),
        ("\u00a0jane@example.org\n", "jane@example.org"),
        ("JANE.DOE@EXAMPLE.ORG", "jane.doe@example.org"),
        # Gmail: dots, tags, googlemail
        ("j.a.n.e.d.o.e@gmail.com", "janedoe@gmail.com"),
        ("jane.doe+petitions+2026@gmail.com", "janedoe@gmail.com"),
        ("Jane.Doe@GoogleMail.com", "janedoe@gmail.com"),
        ("jane.doe+x@googlemail.com", "janedoe@gmail.com"),
        ("jane.doe-work@gmail.com", "janedoe-work@gmail.com"),
        # Microsoft consumer mail: tags stripped, dots kept, domains not merged with each other
        ("Jane.Doe+news@Outlook.com", "jane.doe@outlook.com"),
        ("jane.doe+x@hotmail.com", "jane.doe@hotmail.com"),
        ("jane.doe+x@hotmail.co.uk", "jane.doe@hotmail.co.uk"),
        ("jane+x@live.com", "jane@live.com"),
        ("jane+x@msn.com", "jane@msn.com"),
        # Proton and Fastmail: tags stripped, domains kept apart
        ("jane+x@proton.me", "jane@proton.me"),
        ("jane+x@protonmail.com", "jane@protonmail.com"),
        ("jane+x@pm.me", "jane@pm.me"),
        ("jane+x@fastmail.com", "jane@fastmail.com"),
        # Yahoo, iCloud and custom domains: left alone (a wrong merge is worse than a missed one)
        ("jane-news@yahoo.com", "jane-news@yahoo.com"),
        ("jane+news@yahoo.com", "jane+news@yahoo.com"),
        ("jane@ymail.com", "jane@ymail.com"),
        ("jane+x@icloud.com", "jane+x@icloud.com"),
        ("jane.doe+x@union.example.org", "jane.doe+x@union.example.org"),
        ("jane.doe@workspace-customer.com", "jane.doe@workspace-customer.com"),
        # IDN domains → punycode, whatever the input form
        ("user@bücher.example", "user@xn--bcher-kva.example"),
        ("User@BÜCHER.example", "user@xn--bcher-kva.example"),
        ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
        ("USER@XN--BCHER-KVA.EXAMPLE", "user@xn--bcher-kva.example"),
        ("info@straße.de", "info@xn--strae-oqa.de"),  # non-transitional IDNA 2008: ß is kept
        ("contact@пример.рф", "contact@xn--e1afmkfd.xn--p1ai"),
        ("hello@例え.jp", "hello@xn--r8jz45g.jp"),
        # NFKC: full-width letters, full-width at-sign, ligatures
        ("ｊａｎｅ＠ｅｘａｍｐｌｅ.ｏｒｇ", "jane@example.org"),
        ("ＪＡＮＥ.ＤＯＥ+x@ＧＭＡＩＬ.ＣＯＭ", "janedoe@gmail.com"),
        ("ﬁona@example.org", "fiona@example.org"),
        # internationalised local parts are kept (lower-cased, NFC)
        ("Ñandú@Example.com", "ñandú@example.com"),
        ("n\u0303andu@example.com", "ñandu@example.com"),
        ("রহিম@example.com", "রহিম@example.com"),
    ],
)
def test_canonical_email(raw: str, expected: str) -> None:
    assert canonical_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "jane",
        "jane@",
        "@example.org",
        "jane@@example.org",
        "jane@example",  # no dot in the domain
        "jane@localhost",
        "jane doe@example.org",
        "jane@exa mple.org",
        ".jane@example.org",
        "jane.@example.org",
        "ja..ne@example.org",
        "jane@example..org",
        "jane@-example.org",
        '"jane doe"@example.org',  # quoted local parts: legal but never typed by a real signer
        "jane@[192.0.2.1]",  # IP literal
        "Jane Doe <jane@example.org>",  # display name
        "jane@example.org, joe@example.org",
        "jane@exa_mple.org",
        "jane@example.invalid",  # special-use domain
        "a" * 65 + "@example.org",  # local part over 64 octets
        "jane@" + "a" * 64 + ".org",  # DNS label over 63 octets
        "+tag@gmail.com",  # nothing left of the user name
        "...+tag@googlemail.com",
        "jane.+tag@outlook.com",  # "jane." is not a valid Outlook user name
        "jane\x00@example.org",
    ],
)
def test_garbage_is_rejected_with_a_value_error(raw: str) -> None:
    with pytest.raises(InvalidEmail) as caught:
        canonical_email(raw)
    assert isinstance(caught.value, ValueError)


def test_the_error_message_does_not_repeat_the_address() -> None:
    with pytest.raises(InvalidEmail) as caught:
        canonical_email("secret.person@@example.org")
    assert "secret.person" not in str(caught.value)


@pytest.mark.parametrize(
    ("canonical", "domain"),
    [
        ("janedoe@gmail.com", "gmail.com"),
        ("user@xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("ñandú@example.com", "example.com"),
    ],
)
def test_email_domain(canonical: str, domain: str) -> None:
    assert email_domain(canonical) == domain


def test_email_domain_of_the_three_spellings() -> None:
    assert email_domain(canonical_email("JANEDOE@googlemail.com")) == "gmail.com"


@pytest.mark.parametrize("bad", ["", "janedoe", "@gmail.com", "janedoe@"])
def test_email_domain_rejects_non_addresses(bad: str) -> None:
    with pytest.raises(InvalidEmail):
        email_domain(bad)


# --------------------------------------------------------------------------------------------------------
# normalised_name and name_similarity
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jane Doe", "doe jane"),
        ("  jane   DOE  ", "doe jane"),
        ("Doe, Jane", "doe jane"),
        ("DOE Jane", "doe jane"),
        ("Ｊａｎｅ\u3000Ｄｏｅ", "doe jane"),  # full-width letters and ideographic space
        # accents, word order, hyphens
        ("José Núñez-García", "garcia jose nunez"),
        ("García Núñez, José", "garcia jose nunez"),
        ("Jean-Pierre Lefèvre", "jean lefevre pierre"),
        ("François Müller", "francois muller"),
        ("Zoë Brontë", "bronte zoe"),
        ("Nguyễn Thị Minh Khai", "khai minh nguyen thi"),
        ("Đặng Văn Lâm", "dang lam van"),
        ("Çağlar Gökçe", "caglar gokce"),
        ("Ştefan Ţurcanu", "stefan turcanu"),
        # letters without a decomposition: transliterated
        ("Jürgen Straße", "jurgen strasse"),
        ("Søren Kierkegaard", "kierkegaard soren"),
        ("Łukasz Żółć", "lukasz zolc"),
        ("Æsa Œuvre", "aesa oeuvre"),
        ("Guðrún Þórsdóttir", "gudrun thorsdottir"),
        ("Işıl", "isil"),
        # apostrophes join, other punctuation separates
        ("Seán O'Brien", "obrien sean"),
        ("Seán O’Brien", "obrien sean"),
        ("Dr. J.R.R. Tolkien", "dr j r r tolkien"),
        ("Anna (Annie) Smith", "anna annie smith"),
        ("Soft\u00adhyphen", "softhyphen"),
        # Greek and Cyrillic: case-folded, accents removed, sorted
        ("Γιώργος ΠΑΠΑΔΌΠΟΥΛΟΣ", "γιωργοσ παπαδοπουλοσ"),
        ("Иван Петров-Водкин", "водкин иван петров"),
        ("Ёлкина Алёна", "алена елкина"),
        # Bengali and Khmer: vowel signs and viramas are spelling, kept; words still sorted
        ("রবীন্দ্রনাথ ঠাকুর", "ঠাকুর রবীন্দ্রনাথ"),
        ("ঠাকুর, রবীন্দ্রনাথ", "ঠাকুর রবীন্দ্রনাথ"),
        ("শেখ\u200cহাসিনা", "শেখহাসিনা"),  # zero-width non-joiner is invisible
        ("សុខ សាន្ត", "សាន្ត សុខ"),
        ("សុខ\u200bសាន្ត", "សាន្ត សុខ"),  # Khmer separates words with a zero-width space
        # Chinese, Japanese and Korean: joined in written order, not sorted
        ("王小明", "王小明"),
        ("王 小明", "王小明"),
        ("山田　太郎", "山田太郎"),
        ("김 민수", "김민수"),
        ("Wang 小明", "wang 小明"),
        # nothing left
        ("", ""),
        ("  ", ""),
        ("!!! ---", ""),
    ],
)
def test_normalised_name(raw: str, expected: str) -> None:
    assert normalised_name(raw) == expected


def test_indic_marks_are_not_stripped_like_accents() -> None:
    # কুমার (kumar) and কমর differ only by a vowel sign; stripping marks would make them the same name.
    assert normalised_name("কুমার") != normalised_name("কমর")
    # Khmer: with and without the vowel sign ុ.
    assert normalised_name("សុខ") != normalised_name("សខ")


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        ("Jane Doe", "jane doe", 100, 100),
        ("José Núñez-García", "Garcia Jose Nunez", 100, 100),
        ("Doe, Jane", "Jane Doe", 100, 100),
        ("Jon Smith", "John Smith", AUTO_MERGE_THRESHOLD, 99),  # one-letter typo
        ("Mary Smith", "Mark Smith", REVIEW_THRESHOLD, AUTO_MERGE_THRESHOLD - 0.01),
        ("Li Wei", "Li Wen", REVIEW_THRESHOLD, AUTO_MERGE_THRESHOLD - 0.01),
        ("Ali", "Ali Khan", 0, REVIEW_THRESHOLD - 0.01),  # a missing word is not a typo
        ("Jane Doe", "John Smith", 0, 40),
        ("রবীন্দ্রনাথ ঠাকুর", "ঠাকুর রবীন্দ্রনাথ", 100, 100),
        ("রবীন্দ্রনাথ ঠাকুর", "রবীন্দ্রনথ ঠাকুর", AUTO_MERGE_THRESHOLD, 99),  # one vowel sign missing
        ("সুমি আক্তার", "রুমা বেগম", 0, 40),
        ("សុខ សាន្ត", "សាន្ត សុខ", 100, 100),
        ("王小明", "王 小明", 100, 100),
        ("王小明", "王小红", 0, REVIEW_THRESHOLD - 0.01),  # one character of three: another person
        ("김민수", "김민서", 0, REVIEW_THRESHOLD - 0.01),
        ("", "Jane Doe", 0, 0),
        ("", "", 0, 0),
        ("!!!", "???", 0, 0),
    ],
)
def test_name_similarity(a: str, b: str, low: float, high: float) -> None:
    score = name_similarity(a, b)
    assert low <= score <= high
    assert name_similarity(b, a) == score


# --------------------------------------------------------------------------------------------------------
# Paper signatures
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sw1a 1aa", "SW1A1AA"),
        ("SW1A1AA", "SW1A1AA"),
        ("  SW1A\t1AA ", "SW1A1AA"),
        ("1012 ab", "1012AB"),
        ("00-950", "00950"),
        ("100-0001", "1000001"),
        ("１００－０００１", "1000001"),  # full-width digits and dash
        ("01310–100", "01310100"),  # en dash
        ("K1A 0B1", "K1A0B1"),
        ("75001", "75001"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalised_postal_code(raw: str | None, expected: str) -> None:
    assert normalised_postal_code(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [("de", "DE"), (" bd ", "BD"), ("ＫＨ", "KH"), (None, "")])
def test_normalised_country(raw: str | None, expected: str) -> None:
    assert normalised_country(raw) == expected


def test_paper_identity_normalises_every_field() -> None:
    assert PaperIdentity.of("Núñez, José", "sw1a 1aa", "gb") == PaperIdentity("jose nunez", "SW1A1AA", "GB")


_A = ("Jane Doe", "SW1A 1AA", "GB")


@pytest.mark.parametrize(
    ("candidate", "existing", "decision"),
    [
        # same place, name decides
        (_A, ("jane doe", "sw1a1aa", "gb"), MatchDecision.AUTO_MERGE),
        (_A, ("Doe, Jane", "SW1A1AA", "GB"), MatchDecision.AUTO_MERGE),
        (("José García", "28013", "ES"), ("Garcia Jose", "28013", "es"), MatchDecision.AUTO_MERGE),
        (("Jon Smith", "10115", "DE"), ("John Smith", "10115", "DE"), MatchDecision.AUTO_MERGE),
        (("Mary Smith", "10115", "DE"), ("Mark Smith", "10115", "DE"), MatchDecision.REVIEW),
        (("Li Wei", "100000", "CN"), ("Li Wen", "100000", "CN"), MatchDecision.REVIEW),
        (("Ali", "1207", "BD"), ("Ali Khan", "1207", "BD"), MatchDecision.DISTINCT),
        (_A, ("John Smith", "SW1A 1AA", "GB"), MatchDecision.DISTINCT),
        (("রবীন্দ্রনাথ ঠাকুর", "1207", "BD"), ("ঠাকুর রবীন্দ্রনাথ", "1207", "BD"), MatchDecision.AUTO_MERGE),
        (("សុខ សាន្ត", "12000", "KH"), ("សាន្ត សុខ", "12000", "KH"), MatchDecision.AUTO_MERGE),
        (("王小明", "100000", "CN"), ("王 小明", "100000", "CN"), MatchDecision.AUTO_MERGE),
        (("王小明", "100000", "CN"), ("王小红", "100000", "CN"), MatchDecision.DISTINCT),
        # a different place is a different person, whatever the name
        (_A, ("Jane Doe", "SW1A 2AA", "GB"), MatchDecision.DISTINCT),
        (_A, ("Jane Doe", "SW1A 1AA", "IE"), MatchDecision.DISTINCT),
        (_A, ("Jane Doe", None, "IE"), MatchDecision.DISTINCT),
        # an unknown place: at best review, and only for a near-identical name
        (_A, ("Jane Doe", None, "GB"), MatchDecision.REVIEW),
        (("Jane Doe", "", "GB"), ("Jane Doe", "", "GB"), MatchDecision.REVIEW),
        (_A, ("Jane Doe", "SW1A 1AA", None), MatchDecision.REVIEW),
        (("Mary Smith", None, "DE"), ("Mark Smith", None, "DE"), MatchDecision.DISTINCT),
        # no usable name
        (("!!!", "10115", "DE"), ("???", "10115", "DE"), MatchDecision.DISTINCT),
        (("", "10115", "DE"), ("Jane Doe", "10115", "DE"), MatchDecision.DISTINCT),
    ],
)
def test_match_paper_signature(
    candidate: tuple[str, str | None, str | None],
    existing: tuple[str, str | None, str | None],
    decision: MatchDecision,
) -> None:
    left, right = PaperIdentity.of(*candidate), PaperIdentity.of(*existing)
    assert match_paper_signature(left, right) is decision
    assert match_paper_signature(right, left) is decision


def test_thresholds_can_be_passed_per_call() -> None:
    a = PaperIdentity.of("Mary Smith", "10115", "DE")
    b = PaperIdentity.of("Mark Smith", "10115", "DE")
    assert match_paper_signature(a, b, auto=90) is MatchDecision.AUTO_MERGE
    assert match_paper_signature(a, b, auto=95, review=91) is MatchDecision.DISTINCT
    with pytest.raises(ValueError, match="review threshold"):
        match_paper_signature(a, b, auto=80, review=90)


def test_thresholds_are_ordered() -> None:
    assert 0 < REVIEW_THRESHOLD < AUTO_MERGE_THRESHOLD <= 100


def test_decisions_have_stable_values() -> None:
    assert [d.value for d in MatchDecision] == ["auto_merge", "review", "distinct"]


# --------------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------------

_local_chars = st.sampled_from("abcxyzABCXYZ0189._-+ｊＡ９éÑß")
_domains = st.sampled_from(
    [
        "gmail.com",
        "GMail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.co.uk",
        "yahoo.com",
        "proton.me",
        "example.org",
        "bücher.example",
        "xn--bcher-kva.example",
        "ＥＸＡＭＰＬＥ.ｏｒｇ",
        "straße.de",
        "пример.рф",
    ]
)
_emails = st.builds(
    lambda local, domain, pad: f"{pad}{local}@{domain}{pad}",
    st.text(_local_chars, min_size=1, max_size=20),
    _domains,
    st.sampled_from(["", " ", "\t"]),
)
_names = st.text(st.characters(codec="utf-8"), max_size=30) | st.lists(
    st.sampled_from(
        ["José", "Núñez", "O'Brien", "Jean-Pierre", "ঠাকুর", "রবীন্দ্রনাথ", "សុខ", "王", "小明", "Straße"]
    ),
    max_size=4,
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(_emails)
def test_canonical_email_is_idempotent_and_valid(raw: str) -> None:
    try:
        once = canonical_email(raw)
    except InvalidEmail:
        assume(False)
        return
    assert canonical_email(once) == once
    assert once == once.strip()
    assert email_domain(once).isascii()
    assert email_domain(once) == email_domain(once).lower()


@settings(max_examples=100, deadline=None)
@given(st.emails())
def test_canonical_email_never_fails_other_than_invalid_email(raw: str) -> None:
    try:
        once = canonical_email(raw)
    except InvalidEmail:
        return
    assert canonical_email(once) == once


@settings(max_examples=200, deadline=None)
@given(_names)
def test_normalised_name_is_idempotent(raw: str) -> None:
    once = normalised_name(raw)
    assert normalised_name(once) == once
    assert once == once.strip()
    assert "  " not in once


@settings(max_examples=200, deadline=None)
@given(_names, _names)
def test_name_similarity_is_symmetric_and_bounded(a: str, b: str) -> None:
    score = name_similarity(a, b)
    assert score == name_similarity(b, a)
    assert 0 <= score <= 100
    if normalised_name(a):
        assert name_similarity(a, a) == 100


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12) | st.none())
def test_normalised_postal_code_is_idempotent(raw: str | None) -> None:
    once = normalised_postal_code(raw)
    assert normalised_postal_code(once) == once
    assert " " not in once


def test_a_validated_email_carries_its_canonical_form_so_signing_works_it_out_once() -> None:
    from services.core.signatures.schemas import CheckedEmail, SignatureFields
    from services.core.signatures.store import PreparedSignature

    fields = SignatureFields(name="Jane Doe", email="  Jane.Doe+x@GMail.com ", country="BD")
    assert isinstance(fields.email, CheckedEmail)
    assert fields.email == "Jane.Doe+x@GMail.com"
    assert fields.email.canonical == "janedoe@gmail.com"
    prepared = PreparedSignature.of(fields)
    assert (prepared.email, prepared.email_canonical) == ("Jane.Doe+x@GMail.com", "janedoe@gmail.com")
    # built without validation (model_construct), the canonical form is still worked out
    unchecked = SignatureFields.model_construct(name="Jane", email="JANEDOE@googlemail.com", country="BD")
    assert PreparedSignature.of(unchecked).email_canonical == "janedoe@gmail.com"
