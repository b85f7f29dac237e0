"""OS IDs, LEIs and name keys: the checks the registry's identifiers and names rely on."""

from __future__ import annotations

import pytest

from services.core.registry.identifiers import (
    fold,
    is_os_id,
    lei_is_valid,
    name_key,
    normalise_lei,
    normalise_os_id,
    os_id_check_character,
)


def test_os_id_check_character_worked_by_hand() -> None:
    # ord("B") + ord("D") = 134; digits 2+0+1+9+1+8+9 = 30; N7D07 = 21+7+13+0+7 = 48;
    # 212 mod 32 = 20, the Crockford symbol M.
    assert os_id_check_character("BD2019189N7D07") == "M"
    assert normalise_os_id("BD2019189N7D07M") == "BD2019189N7D07M"


@pytest.mark.parametrize("text", ["bd2019189n7d07m", " BD-2019189-N7D07-M ", "BD 2019189 N7D07 M"])
def test_os_id_spellings_are_accepted(text: str) -> None:
    assert normalise_os_id(text) == "BD2019189N7D07M"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("BD2019189N7D07Y", "check character"),  # one character mistyped
        ("BD2019189N7D07", "country code, 7 digits"),  # too short
        ("BD2019189N7U07M", "country code, 7 digits"),  # U is no Crockford symbol
        ("B12019189N7D07M", "country code, 7 digits"),
        ("BD2019000N7D07M", "day of the year"),
        ("BD2019367N7D07M", "day of the year"),
    ],
)
def test_os_id_mistakes_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalise_os_id(text)
    assert not is_os_id(text)


def test_os_id_check_is_a_plain_sum() -> None:
    """Open Supply Hub's check character is a sum: it misses two characters swapped (the LEI's does not)."""
    assert is_os_id("BD2019189N7D70M")


def test_lei_checksum() -> None:
    assert lei_is_valid("5493001KJTIIGC8Y1R12")
    assert normalise_lei(" 5493001kjtiigc8y1r12") == "5493001KJTIIGC8Y1R12"
    assert not lei_is_valid("5493001KJTIIGC8Y1R13")  # a check digit mistyped
    assert not lei_is_valid("5493001KJTIIGC8Y1R21")  # check digits swapped
    with pytest.raises(ValueError, match="check digits"):
        normalise_lei("5493001KJTIGIC8Y1R12")  # two characters swapped
    with pytest.raises(ValueError, match="18 letters"):
        normalise_lei("5493001KJTIIGC8Y1R1")


def test_names_fold_case_accents_and_punctuation() -> None:
    assert fold("  Müller   TEXTIL ") == "muller textil"
    assert name_key("H&M") == name_key("h & m") == name_key("H & M.") == "h m"
    assert name_key("Ünited Fashion Ltd.") == name_key("united fashion ltd")
    assert name_key("&") == "&"  # nothing but punctuation: the folded text itself
    assert fold("নাসা গ্রুপ") == fold("নাসা গ্রুপ")  # other scripts fold consistently


def test_name_keys_keep_to_their_column() -> None:
    # One character can decompose into eighteen: the key is cut to the column's length.
    assert len(name_key("\ufdfa" * 200)) == 200
