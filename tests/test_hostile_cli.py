"""Hostile config input (issue 22, defect 13 and the YAML parts of 19): YAML 1.1 traps."""

from __future__ import annotations

import pytest

from detal.errors import ConfigError
from detal.safeyaml import load_yaml

REFUSED = [
    ("seed: 010\n", ["line 1", "'010'", "8"]),
    ("seed: 0x10\n", ["line 1", "'0x10'", "16"]),
    ("seed: 0b101\n", ["line 1", "'0b101'", "5"]),
    ("seed: 1_000\n", ["line 1", "'1_000'", "1000"]),
    ("t: 1:30\n", ["line 1", "'1:30'", "90"]),
    ("seed: -010\n", ["line 1", "'-010'"]),
    ("a: 1\nb: 2\na: 3\n", ["line 3", "'a'", "twice", "line 1"]),
    ("x:\n  k: 1\n  k: 2\n", ["line 3", "'k'", "twice"]),
    ("- {p: 1, p: 2}\n", ["'p'", "twice"]),
    ("flag: yes\n", ["line 1", "'yes' is not true or false", "True"]),
    ("flag: No\n", ["line 1", "'No' is not true or false", "False"]),
    ("a: 1\nflag: on\n", ["line 2", "'on' is not true or false"]),
    ("flag: OFF\n", ["'OFF' is not true or false"]),
    ("names: [cat, no, dog]\n", ["line 1", "'no' is not true or false"]),  # a class called no
    ("lr: 1_000.5\n", ["line 1", "'1_000.5' is not a plain decimal number", "1000.5"]),
    ("lr: 1:30.5\n", ["'1:30.5' is not a plain decimal number", "90.5"]),
    ("lr: -1_0.0\n", ["'-1_0.0' is not a plain decimal number"]),
]


@pytest.mark.parametrize(("text", "needles"), REFUSED)
def test_yaml11_traps_refused_with_line(text: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml(text, "c.yaml")
    message = str(info.value)
    assert message.startswith("c.yaml: ")
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


READ = [
    ("lr: 5e-2\n", {"lr": 0.05}),
    ("lr: 1e3\n", {"lr": 1000.0}),
    ("lr: -2E+1\n", {"lr": -20.0}),
    ("seed: 10\n", {"seed": 10}),
    ("seed: 0\n", {"seed": 0}),
    ("seed: -3\n", {"seed": -3}),
    ("seed: '010'\n", {"seed": "010"}),
    ("seed: 0o10\n", {"seed": "0o10"}),  # YAML 1.1 leaves it a string; Config refuses the type
    ("a: 1.5\nb: 1\n", {"a": 1.5, "b": 1}),
]


@pytest.mark.parametrize(("text", "expected"), READ)
def test_plain_numbers_read_as_meant(text: str, expected: dict) -> None:
    value = load_yaml(text, "c.yaml")
    assert value == expected
    assert [type(v) for v in value.values()] == [type(v) for v in expected.values()]
