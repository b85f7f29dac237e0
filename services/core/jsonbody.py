"""Reading JSON that arrives in requests: UTF-8 only, nested at most ``MAX_DEPTH`` levels.

Read by orjson, its result's depth counted without recursion; what orjson refuses or reads as a float goes
to ``json``, the depth measured on the text first, so no deep document makes a parser or validator recurse
without bound. Both paths take the same bodies; every failure is a ``json.JSONDecodeError``.
docs/security.md.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

import orjson

MAX_DEPTH = 32

_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_ONLY_BRACKETS = dict.fromkeys(c for c in range(128) if chr(c) not in "[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.__getitem__
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class JsonTooDeep(json.JSONDecodeError):
    """A document nested deeper than ``MAX_DEPTH`` arrays and objects."""


class JsonHasNul(json.JSONDecodeError):
    """A document holding a NUL character (``\\u0000``): PostgreSQL cannot store it in text or ``jsonb``.
    ``path`` leads to the first string (or key) holding one."""

    def __init__(self, path: list[str | int], doc: str, pos: int) -> None:
        super().__init__("The document holds a NUL character (\\u0000)", doc, pos)
        self.path = path


def _nul_path(value: Any) -> list[str | int] | None:
    if isinstance(value, str):
        return [] if "\x00" in value else None
    items: list[tuple[str | int, Any]] = (
        list(enumerate(value))
        if isinstance(value, list)
        else list(value.items())
        if isinstance(value, dict)
        else []
    )
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return [key]
        found = _nul_path(item)
        if found is not None:
            return [key, *found]
    return None


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("The body is not valid UTF-8", "", exc.start) from None


def depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text`` (brackets inside strings do not count)."""
    brackets = _STRING.sub("", text).translate(_ONLY_BRACKETS).encode("ascii", "ignore")
    return max(accumulate(map(_STEP, brackets)), default=0)


class _Unsure(Exception):
    """What orjson read may differ from what ``json`` reads: let ``json`` read it."""


def _depth(value: Any, max_depth: int) -> int:
    """How deeply ``value`` (as orjson read it: plain dicts, lists, str, int, float, bool, None) nests,
    counted up to ``max_depth + 1``. Raises _Unsure on a float."""
    if type(value) is float:
        raise _Unsure
    if type(value) is not dict and type(value) is not list:
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, level = stack.pop()
        if level > deepest:
            deepest = level
            if deepest > max_depth:
                return deepest
        for child in container.values() if type(container) is dict else container:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, level + 1))
            elif kind is float:
                raise _Unsure
    return deepest


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, allow_nul: bool = True, fast: bool = True) -> Any:
    """``json.loads`` for request bodies: refuses bytes that are not UTF-8, documents nested deeper than
    ``max_depth`` and, unless ``allow_nul``, NUL characters (the ``\\u0000`` escape is the only way JSON
    carries one). ``fast=False`` reads with ``json`` only (the tests compare both)."""
    text = _decode(data)
    if fast:
        try:
            value = orjson.loads(text)
            deepest = _depth(value, max_depth)
        except (orjson.JSONDecodeError, _Unsure):
            pass  # json decides, and says why
        else:
            if deepest > max_depth:
                raise JsonTooDeep(f"The document is nested deeper than {max_depth} levels", "", 0)
            # JSON carries a NUL only as the escape \u0000 (a raw one is refused), so without that text
            # there is none to look for.
            if not allow_nul and "\\u0000" in text and (found := _NUL_ESCAPE.search(text)):
                raise JsonHasNul(_nul_path(value) or [], text, found.end() - 6)
            return value
    if depth(text) > max_depth:
        raise JsonTooDeep(f"The document is nested deeper than {max_depth} levels", "", 0)
    data = json.loads(text)
    if not allow_nul and (found := _NUL_ESCAPE.search(text)):
        raise JsonHasNul(_nul_path(data) or [], text, found.end() - 6)
    return data
