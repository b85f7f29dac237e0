"""Reading request JSON: UTF-8 only, a nesting limit measured before parsing, NUL characters found."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core import jsonbody

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=40,
)


def nesting(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    return 0


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(map(holds_nul, value))
    if isinstance(value, dict):
        return any(map(holds_nul, [*value, *value.values()]))
    return False


@given(JSON, st.booleans())
def test_depth_is_the_nesting_of_the_document(value: Any, ascii_only: bool) -> None:
    assert jsonbody.depth(json.dumps(value, ensure_ascii=ascii_only)) == nesting(value)


@given(JSON)
def test_documents_within_the_limit_read_as_json_loads_reads_them(value: Any) -> None:
    text = json.dumps(value)
    assert jsonbody.loads(text.encode(), max_depth=nesting(value)) == json.loads(text)
    if holds_nul(value):
        with pytest.raises(jsonbody.JsonHasNul):
            jsonbody.loads(text, allow_nul=False)
    else:
        assert jsonbody.loads(text, allow_nul=False) == value


@pytest.mark.parametrize(
    "text",
    ['"[[[[["', '{"a": "]]]{{{", "b": []}', r'["\"[[[\"", "\\", [[]]]'],
)
def test_brackets_in_strings_do_not_count(text: str) -> None:
    assert jsonbody.depth(text) == nesting(json.loads(text))


def test_too_deep_is_refused_before_parsing_and_quickly() -> None:
    body = b"[" * 1_000_000 + b"]" * 1_000_000
    started = time.perf_counter()
    with pytest.raises(jsonbody.JsonTooDeep):
        jsonbody.loads(body)
    assert time.perf_counter() - started < 2
    assert jsonbody.loads(b"[" * 32 + b"]" * 32) is not None
    with pytest.raises(json.JSONDecodeError, match="nested deeper than 32 levels"):
        jsonbody.loads(b"[" * 33 + b"]" * 33)


def test_bytes_that_are_not_utf8_are_a_decode_error() -> None:
    with pytest.raises(json.JSONDecodeError, match="not valid UTF-8"):
        jsonbody.loads(b'{"name": "Jane \xff"}')
    with pytest.raises(json.JSONDecodeError, match="not valid UTF-8"):
        jsonbody.loads('{"name": "Jane"}'.encode("utf-16"))


@pytest.mark.parametrize(
    ("text", "nul"),
    [
        (r'"a\u0000"', True),
        (r'{"a\u0000": 1}', True),
        (r'"a\\\u0000"', True),  # an escaped backslash, then a NUL
        (r'"a\\u0000"', False),  # an escaped backslash, then the text "u0000"
        (r'"a\u00001"', True),
        (r'"a\u0001"', False),
    ],
)
def test_nul_characters_are_refused_when_asked(text: str, nul: bool) -> None:
    assert holds_nul(json.loads(text)) is nul
    jsonbody.loads(text)  # allowed by default
    if nul:
        with pytest.raises(jsonbody.JsonHasNul):
            jsonbody.loads(text, allow_nul=False)
    else:
        assert jsonbody.loads(text, allow_nul=False) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (r'{"a": [1, "x\u0000"]}', ["a", 1]),
        (r'{"a": {"b\u0000": 1}}', ["a", "b\x00"]),
        (r'["\u0000"]', [0]),
        (r'"\u0000"', []),
    ],
)
def test_a_nul_is_located(text: str, path: list[str | int]) -> None:
    with pytest.raises(jsonbody.JsonHasNul) as refused:
        jsonbody.loads(text, allow_nul=False)
    assert refused.value.path == path
