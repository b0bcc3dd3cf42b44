"""The export registry: every place that names a format reads it from there."""

from __future__ import annotations

import pytest

from detal.cli import build_parser
from detal.errors import ConfigError
from detal.export import ARTIFACTS, EXPORT_FORMATS, FORMATS, IMPORT_FORMATS, parse_formats
from detal.export.registry import format_list


def _option(command: str, flag: str):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return next(a for a in sub._actions if flag in a.option_strings)


def test_names_and_artifacts_come_from_the_registry():
    assert FORMATS == ("yolo", "cvat-yolo", "coco", "cvat-xml", "label-studio")
    assert IMPORT_FORMATS == tuple(n for n in FORMATS if EXPORT_FORMATS[n].read is not None)
    assert ARTIFACTS == {n: f.artifact for n, f in EXPORT_FORMATS.items()}
    assert len(set(ARTIFACTS.values())) == len(ARTIFACTS)  # no two formats own one path


def test_cli_choices_and_help_come_from_the_registry():
    assert tuple(_option("import", "--format").choices) == IMPORT_FORMATS
    assert _option("prelabel", "--format").help.startswith(", ".join(FORMATS) + ";")


@pytest.mark.parametrize(
    ("names", "described", "last", "want"),
    [
        (("yolo",), False, ", ", "yolo"),
        (("yolo", "coco"), False, " and ", "yolo and coco"),
        (("yolo", "coco"), True, ", ", "yolo (Ultralytics layout), coco (instances JSON)"),
    ],
)
def test_format_list(names, described, last, want):
    assert format_list(names, described=described, last=last) == want


def test_unknown_format_suggests_a_registered_one():
    with pytest.raises(ConfigError, match="did you mean 'label-studio'"):
        parse_formats("labelstudio")
