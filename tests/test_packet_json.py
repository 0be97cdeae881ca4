"""The packet JSON codec: the standard library's decoder, built once, integers bounded like python-engineio's."""
from __future__ import annotations

import json
from typing import Any

import pytest
from engineio import json as engineio_json
from flask import Flask
from socketio import packet as sio_packet

from realtime.sockets import packet_json


@pytest.mark.parametrize(
    "text",
    ['["chat:message",{"roomId":"a","content":"hé","n":12345678901234567890}]', "[1.5,null,true]", '"x"', "{}"],
)
def test_decodes_what_the_standard_library_decodes(text: str) -> None:
    assert packet_json.loads(text) == json.loads(text)
    assert packet_json.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("codec", [packet_json, engineio_json], ids=["ours", "python-engineio"])
def test_refuses_a_huge_integer_like_python_engineio(codec: Any) -> None:
    with pytest.raises(ValueError, match="Integer is too large"):
        codec.loads("[" + "9" * 101 + "]")
    assert codec.loads("[" + "9" * 100 + "]") == [int("9" * 100)]


def test_keyword_arguments_still_work() -> None:
    assert packet_json.loads('{"a": 1}', object_hook=lambda d: sorted(d)) == ["a"]


def test_the_app_gives_the_codec_to_python_socketio(app: Flask) -> None:
    assert sio_packet.Packet.json is packet_json
    decoded = sio_packet.Packet(encoded_packet='2["e",{"a":1}]')
    assert decoded.data == ["e", {"a": 1}]
