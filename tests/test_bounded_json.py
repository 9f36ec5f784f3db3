"""The bounded JSON decoder: depth measured without recursion, strings skipped exactly.

``too_deep`` is compared with a reference (the decoded value's depth, found by walking
it) over random JSON that puts brackets, quotes and backslashes inside strings, so a
wrong string boundary shows as a disagreement.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from cosmictron import bounded_json, limits
from cosmictron.errors import InvalidRequest, TooDeep


def depth_of(value: Any) -> int:
    """The nesting depth of a decoded value, by an explicit stack."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(5 if depth < 12 else 3)
    if kind == 0:
        return "".join(rng.choice('ab[]{}"\\\n é') for _ in range(rng.randrange(8)))
    if kind == 1:
        return rng.randrange(-1000, 1000)
    if kind == 2:
        return rng.choice([None, True, 1.5])
    if kind == 3:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {random_value(rng, 99): random_value(rng, depth + 1) for _ in range(rng.randrange(3))}


def test_the_depth_check_agrees_with_the_decoded_depth() -> None:
    rng = random.Random(10)
    for _ in range(3000):
        value = random_value(rng, 0)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        depth = depth_of(value)
        for limit in (0, 1, 2, depth - 1, depth, depth + 1):
            if limit >= 0:
                assert bounded_json.too_deep(text, limit) == (depth > limit), (text, limit)


def test_at_the_limit_decodes_one_past_is_too_deep() -> None:
    limit = limits.json_depth_max
    at = "[" * limit + "]" * limit
    assert depth_of(bounded_json.loads(at, "x")) == limit
    with pytest.raises(TooDeep, match=f"more than {limit} deep"):
        bounded_json.loads("[" + at + "]", "the body")


def test_a_100k_deep_text_is_refused_without_recursing() -> None:
    for text in ("[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000):
        with pytest.raises(TooDeep):
            bounded_json.loads(text, "the body")


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps(["[" * 1000, "\\", '"{{{{', "\\\\[[[["])
    assert bounded_json.loads(text, "x")[0] == "[" * 1000


def test_an_unterminated_string_is_linear_and_refused_as_json() -> None:
    text = "[[" + '"' + '\\"' * 200_000
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        bounded_json.loads(text, "the body")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'["\xff"]', "not UTF-8"),
        (b"[1,", "not valid JSON"),
        (b"1" * 5000, "not valid JSON"),  # past Python's int digit limit
        (b"\xef\xbb\xbf[]", "not valid JSON"),  # a BOM
    ],
)
def test_bad_input_is_invalid_request(data: bytes, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words) as caught:
        bounded_json.loads(data, "the body")
    assert caught.value.http_status == 400
