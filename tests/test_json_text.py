"""Compact JSON by orjson (:mod:`realtime.json_text`): the standard library's JSON, and its fallbacks."""
from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Any

import pytest

from realtime import json_text


class Kind(StrEnum):
    TEXT = "TEXT"


VALUES: list[Any] = [
    {"id": "1-0", "roomId": "lobby", "sender": {"id": "alice", "avatarUrl": None}, "n": [1, 2.5, True, False]},
    ["chat:new_message", {"content": "hé \"quoted\" \\ \u2028 \U0001f600 </script>"}, "1700000000000-7"],
    {"type": Kind.TEXT, "pair": ("a", 1), "nested": [[[{"deep": []}]]], "empty": {}},
    "plain", 0, -1, 2**63 - 1, 0.1, 1.5e300, None,
]


@pytest.mark.parametrize("value", VALUES)
def test_the_text_is_the_standard_librarys_compact_json(value: Any) -> None:
    text = json_text.dumps(value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("value", [{"big": 2**80}, {1: "int key"}, [[[]]] * 2 + [json.loads("[" * 300 + "]" * 300)]])
def test_what_orjson_refuses_the_standard_library_writes(value: Any) -> None:
    assert json_text.dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_a_value_neither_writes_raises_type_error() -> None:
    with pytest.raises(TypeError):
        json_text.dumps({"raw": b"bytes"})


def test_nan_and_infinity_are_written_as_null() -> None:
    assert json_text.dumps([math.nan, math.inf, -math.inf]) == "[null,null,null]"


def test_small_floats_read_the_same_though_written_shorter() -> None:
    assert json.loads(json_text.dumps([1e-7, 2.5e-10])) == [1e-7, 2.5e-10]
