"""orjson is asked first only where it gives exactly what the standard library gives (it exists for speed)."""

from __future__ import annotations

import json

import pytest

from unified_ft import fastjson
from unified_ft.data.files import DECODER

LINES = [
    '{"instruction": "a", "input": "", "output": "b"}',
    '{"messages": [{"role": "user", "content": "é ☃ \\u2028"}, {"role": "assistant", "content": "x"}]}',
    '{"a": true, "b": null, "c": [[], {}], "d": "x, 5: 6"}',
    '{"a": 1, "b": -0, "c": 2.50, "d": 1e400}',  # numbers: the standard decoder's (text for uft's reader)
    '{"a": 123456789012345678901234567890}',  # orjson would give a float
    '{"a": NaN, "b": -Infinity}',  # orjson refuses these
    '{"a": "\\ud800"}',  # a lone surrogate: orjson refuses it
    '{"a": 1, "a": "dup"}',
    '  {"a": "spaced"}\r\n',
    '"text"', "true", "null", "[]",
]
BAD_LINES = ['{"a": }', '{"a": "x\x01"}', '{"a": 1} trailing', "", "[1, 2", '{"a": "' + "[" * 2000 + '"}x']


@pytest.mark.parametrize("standard", [json.loads, DECODER.decode], ids=["json.loads", "uft-reader"])
def test_loads_gives_the_standard_value_and_type(standard) -> None:
    loads = fastjson.make_loads(standard)
    for line in LINES:
        got, want = loads(line), standard(line)
        assert repr(got) == repr(want), line
        assert json.dumps(got, default=str) == json.dumps(want, default=str)
        if isinstance(want, dict):
            assert [type(v) for v in got.values()] == [type(v) for v in want.values()], line


@pytest.mark.parametrize("line", BAD_LINES)
def test_loads_raises_the_standard_error(line: str) -> None:
    loads = fastjson.make_loads(DECODER.decode)
    with pytest.raises(json.JSONDecodeError) as want:
        DECODER.decode(line)
    with pytest.raises(json.JSONDecodeError) as got:
        loads(line)
    assert (got.value.msg, got.value.pos) == (want.value.msg, want.value.pos)


def test_deep_nesting_keeps_the_standard_recursion_error() -> None:
    line = "[" * 100_000 + "]" * 100_000
    with pytest.raises(RecursionError):
        fastjson.make_loads(json.loads)(line)


def test_without_orjson_the_standard_functions_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastjson, "orjson", None)
    assert fastjson.make_loads(json.loads) is json.loads


@pytest.mark.parametrize("depth", [63, 64, 65, 999, 1010, 1024])
def test_nesting_near_the_limits_gives_the_standard_outcome(depth: int) -> None:
    line = "[" * depth + "]" * depth
    loads = fastjson.make_loads(json.loads)
    try:
        want: object = repr(json.loads(line))
    except RecursionError:
        want = RecursionError
    try:
        got: object = repr(loads(line))
    except RecursionError:
        got = RecursionError
    assert got == want
