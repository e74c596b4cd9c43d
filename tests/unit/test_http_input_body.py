"""The duplicate-key check of request bodies against the plain oracle (stdlib json, pairs hook)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tradehall.api.body import has_duplicate_keys, is_json_media_type

KEYS = st.sampled_from(["a", "b", 'q"', "back\\slash", "c:olon", "é", "\u2028", "\x01", "𝄞"])


def oracle(text: bytes) -> bool:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise KeyError("duplicate")
        return dict(pairs)

    try:
        json.loads(text, object_pairs_hook=hook)
    except KeyError:
        return True
    return False


def encode_string(draw: st.DrawFn, value: str) -> str:
    """A JSON string literal of `value`, with characters escaped or not at random."""
    parts = []
    for ch in value:
        must = ch in '"\\' or ord(ch) < 0x20
        if must or draw(st.booleans()):
            if ord(ch) > 0xFFFF:
                parts.append(json.dumps(ch)[1:-1])  # a surrogate pair
            else:
                parts.append(draw(st.sampled_from([f"\\u{ord(ch):04x}", f"\\u{ord(ch):04X}"])))
        else:
            parts.append(ch)
    return '"' + "".join(parts) + '"'


@st.composite
def json_text(draw: st.DrawFn, depth: int = 0) -> str:
    kinds = ["object", "array", "string", "number"] if depth < 3 else ["string", "number"]
    kind = draw(st.sampled_from(kinds))
    if kind == "object":
        pairs = draw(st.lists(st.tuples(KEYS, json_text(depth + 1)), max_size=4))
        space = draw(st.sampled_from(["", " ", "\n\t"]))
        return "{" + ",".join(f"{encode_string(draw, k)}{space}:{space}{v}" for k, v in pairs) + "}"
    if kind == "array":
        return "[" + ",".join(draw(st.lists(json_text(depth + 1), max_size=3))) + "]"
    if kind == "string":
        return encode_string(draw, draw(st.text(alphabet='ab:"\\é\x02{}[],', max_size=6)))
    return draw(st.sampled_from(["1", "-2.5e3", "1" * 30, "1e400", "true", "null"]))


@settings(max_examples=500, deadline=None)
@given(json_text())
def test_duplicate_check_agrees_with_the_stdlib_oracle(text: str) -> None:
    body = text.encode()
    assert has_duplicate_keys(body) == oracle(body)


def test_duplicates_found_at_any_depth_and_through_escapes() -> None:
    assert has_duplicate_keys(b'{"a": 1, "a": 1}')
    assert has_duplicate_keys(b'{"price": "1", "pr\\u0069ce": "2"}')
    assert has_duplicate_keys(b'[{"x": {"k": "\\"", "k": 2}}]')
    assert has_duplicate_keys(b'{"n": 1e999, "n": 2}')  # beyond a double: the stdlib path
    assert has_duplicate_keys(b"[" * 400 + b'{"a":1,"a":2}' + b"]" * 400)  # past orjson's encoder depth
    assert not has_duplicate_keys(b'{"a": "x:y", "b": {"a": 1}, "c": "\\\\"}')
    assert not has_duplicate_keys(b'{"account_id": ')  # not JSON: left to the route
    assert not has_duplicate_keys(b"[" * 100_000)
    assert not has_duplicate_keys(b"\xff\xfe")


def test_json_media_type() -> None:
    assert is_json_media_type(b"application/json")
    assert is_json_media_type(b"Application/JSON ; charset=utf-8")
    assert not is_json_media_type(b"application/jsonp")
    assert not is_json_media_type(b"text/plain")
    assert not is_json_media_type(b"")
