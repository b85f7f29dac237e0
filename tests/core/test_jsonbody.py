"""Reading request JSON: UTF-8 only, a nesting limit measured before parsing, NUL characters found."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
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


# --- the orjson path reads what json reads ------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2).flatmap(lambda n: st.sampled_from([n, -n]))
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from(["\x00", "a\x00b", "\\u0000", "\ud800", "\U0001f600", '"', "\\"])
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.just("\x00"), children, max_size=3)
    ),
    max_leaves=30,
)
# A document nested 30 to 36 levels: around the limit of 32.
DEEP = st.tuples(st.integers(30, 36), SCALARS).map(lambda d: ("[" * d[0]) + json.dumps(d[1]) + "]" * d[0])


def _dumped(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)


TEXTS = st.one_of(
    st.builds(_dumped, VALUES, st.booleans()),
    DEEP,
    st.text(st.sampled_from('[]{}",:0123456789.eE+-truefalsnul \\/u\x00\t\n'), max_size=30),
    st.builds(lambda v, cut: _dumped(v, True)[:cut], VALUES, st.integers(0, 40)),  # cut short
    st.sampled_from(
        ["NaN", "-Infinity", "1e400", "-0", "-0.0", "1E2", "18446744073709551616", "[1,]", "{'a': 1}",
         '{"a": 1, "a": 2}', '"\\ud800"', '"\\udc00\\ud800"', "\ufeff[]", '"a\x00"', '"\\u0000"', '" \t"',
         "[1]x", " [1] ", "\x0c[1]", "0123", "[.5]", "[5.]", '"\\x41"', "\u2028[]"]
    ),
)  # fmt: skip


def _strict(value: Any) -> Any:
    """``value`` with every number's type (1 is not 1.0) and float spelling (nan) made comparable."""
    if isinstance(value, dict):
        return ("dict", [(key, _strict(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_strict(item) for item in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def _outcome(data: bytes | str, **options: Any) -> Any:
    try:
        return ("ok", _strict(jsonbody.loads(data, **options)))
    except json.JSONDecodeError as exc:
        return (type(exc).__name__, str(exc), getattr(exc, "path", None))
    except RecursionError:  # pragma: no cover - the depth limit is there to prevent it
        return ("RecursionError",)


@settings(max_examples=1500, deadline=None)
@given(TEXTS, st.booleans(), st.sampled_from(["str", "bytes", "latin-1"]))
def test_the_fast_path_takes_and_refuses_what_json_does(text: str, allow_nul: bool, kind: str) -> None:
    data: bytes | str = text
    if kind != "str":
        try:
            data = text.encode("utf-8" if kind == "bytes" else "latin-1")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "surrogatepass")  # invalid UTF-8 bytes
    fast = _outcome(data, allow_nul=allow_nul)
    assert fast == _outcome(data, allow_nul=allow_nul, fast=False)


def test_the_fast_path_reads_a_webhook_batch_without_json() -> None:
    body = json.dumps({"signatures": [{"name": "Jane", "opt_in": True, "n": 3}] * 1000}).encode()
    assert jsonbody.loads(body) == json.loads(body)
    assert jsonbody._depth(orjson.loads(body), 32) == 3
