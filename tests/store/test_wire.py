"""The API's JSON at both ends (`store.wire`): orjson's speed, the standard library's rules."""

from __future__ import annotations

import math

import pytest

from xos_runtime.store import wire


def test_round_trip_of_rows() -> None:
    row = {"id": 3, "name": "é", "enacted": 1764500000.123456, "deleted": False, "x": None}
    assert wire.loads(wire.dumps(row)) == row
    assert wire.dumps({"a": (1, 2)}) == b'{"a":[1,2]}'


def test_integers_beyond_64_bits_are_written() -> None:
    assert wire.dumps({"n": 2**70}) == b'{"n":1180591620717411303424}'


def test_what_json_cannot_say_is_refused() -> None:
    with pytest.raises(TypeError):
        wire.dumps({"s": {1, 2}})


@pytest.mark.parametrize("text", [b"NaN", b'{"a": Infinity}', b"{", b"\xff", b"[1,]"])
def test_not_json_is_refused(text: bytes) -> None:
    with pytest.raises(ValueError):
        wire.loads(text)


def test_a_number_too_large_is_read_as_infinity_for_the_reader_to_refuse() -> None:
    assert math.isinf(wire.loads(b'{"now": 1e999}')["now"])
