"""detal.labelstudio without a server: tokens, URLs, the annotation rule, box conversion.

The live round trip against a real Label Studio is in test_labelstudio_live.py.
"""

from __future__ import annotations

import base64
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsserver import free_port
from projectkit import NAMES, label_cycle, make_project, snapshot

from detal.cli import main
from detal.errors import ConfigError
from detal.export.labelstudio import labeling_config
from detal.labelstudio import (
    annotation_to_yolo,
    attach_scores,
    chosen_annotation,
    config_classes,
    normalize_url,
    prediction_regions,
    read_token,
    token_kind,
)


def _jwt(payload: dict) -> str:
    def seg(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(payload)}.c2lnbmF0dXJl"


@pytest.mark.parametrize("token, kind", [
    ("0123456789abcdef0123456789abcdef01234567", "legacy"),
    (_jwt({"token_type": "refresh", "user_id": "1"}), "refresh"),
    (_jwt({"token_type": "access", "user_id": "1"}), "access"),
    (_jwt({"user_id": "1"}), "legacy"),
    ("a.b.c", "legacy"),
    ("not.base64!.x", "legacy"),
])
def test_token_kind(token, kind):
    assert token_kind(token) == kind


@pytest.mark.parametrize("file_text, env, expected, error", [
    ("abc\n", {}, "abc", None),
    ("  abc  \nsecond line\n", {"LABEL_STUDIO_API_KEY": "env"}, "abc", None),  # the file wins
    (None, {"LABEL_STUDIO_API_KEY": " tok "}, "tok", None),
    ("\n \n", {}, None, "token file is empty"),
    (None, {}, None, "set LABEL_STUDIO_API_KEY or pass --token-file"),
    (None, {"LABEL_STUDIO_API_KEY": "  "}, None, "set LABEL_STUDIO_API_KEY or pass --token-file"),
])
def test_read_token(tmp_path, file_text, env, expected, error):
    path = None
    if file_text is not None:
        path = tmp_path / "token"
        path.write_text(file_text)
    if error:
        with pytest.raises(ConfigError, match=error):
            read_token(path, env)
    else:
        assert read_token(path, env) == expected


def test_read_token_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope: token file not found"):
        read_token(tmp_path / "nope", {"LABEL_STUDIO_API_KEY": "x"})


@pytest.mark.parametrize("url, expected", [
    ("http://localhost:8080", "http://localhost:8080"),
    ("http://localhost:8080/", "http://localhost:8080"),
    (" https://ls.example.org/sub/ ", "https://ls.example.org/sub"),
    ("localhost:8080", None),
    ("ftp://host", None),
    ("http://", None),
    ("http://host/?x=1", None),
])
def test_normalize_url(url, expected):
    if expected is None:
        with pytest.raises(ConfigError, match="must look like http://host:8080"):
            normalize_url(url)
    else:
        assert normalize_url(url) == expected


def _ann(i, updated, *, cancelled=False, gt=False):
    return {"id": i, "updated_at": updated, "created_at": "2026-01-01T00:00:00Z",
            "was_cancelled": cancelled, "ground_truth": gt}


@pytest.mark.parametrize("annotations, chosen", [
    ([], None),
    ([_ann(1, "2026-01-02T00:00:00Z", cancelled=True)], None),
    ([_ann(1, "2026-01-02T00:00:00Z"), _ann(2, "2026-01-01T00:00:00Z")], 1),  # latest update
    ([_ann(1, "2026-01-02T00:00:00Z"), _ann(2, "2026-01-03T00:00:00Z", cancelled=True)], 1),
    ([_ann(1, "2026-01-01T00:00:00Z", gt=True), _ann(2, "2026-01-05T00:00:00Z")], 1),
    ([_ann(1, "2026-01-01T00:00:00+00:00"), _ann(2, "2026-01-01T00:00:00Z")], 2),  # tie: higher id
    ([_ann(3, "2026-01-01T01:00:00+01:00"), _ann(2, "2026-01-01T00:30:00Z")], 2),  # time zones
    ([_ann(1, "garbage"), _ann(2, "2026-01-01T00:00:00")], 2),
])
def test_chosen_annotation(annotations, chosen):
    got = chosen_annotation(annotations)
    assert (got and got["id"]) == chosen


def _region(label, x, y, w, h, *, rotation=0, kind="rectanglelabels", labels=None):
    return {"id": "r", "type": kind, "from_name": "label", "to_name": "image",
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation,
                      "rectanglelabels": [label] if labels is None else labels}}


@pytest.mark.parametrize("result, text, problem", [
    ([], "", None),
    ([_region("cat", 10, 20, 30, 40)], "0 0.250000 0.400000 0.300000 0.400000\n", None),
    # by name: bird is the project's class 2, the alphabetical index would be 0
    ([_region("bird", 0, 0, 100, 100)], "2 0.500000 0.500000 1.000000 1.000000\n", None),
    ([_region("dog", -5, 90, 20, 20)], "1 0.075000 0.950000 0.150000 0.100000\n", None),  # clipped
    ([_region("cat", 0, 0, 10, 10, rotation=360)], "0 0.050000 0.050000 0.100000 0.100000\n", None),
    ([{"type": "choices", "value": {"choices": ["x"]}}], "", None),
    ([_region("horse", 10, 20, 30, 40)], None, "label 'horse' is not one of the project's classes"),
    ([_region("cat", 10, 20, 30, 40, rotation=30)], None, "rotated by 30 degrees"),
    ([_region("cat", 10, 20, 30, 40, labels=[])], None, "exactly one label, it has 0"),
    ([_region("cat", 10, 20, 30, 40, labels=["cat", "dog"])], None, "exactly one label, it has 2"),
    ([_region("cat", 120, 20, 30, 40)], None, "no area inside the image"),
    ([_region("cat", "x", 20, 30, 40)], None, "without numeric"),
    ([_region("cat", float("nan"), 20, 30, 40)], None, "not finite"),
])
def test_annotation_to_yolo(result, text, problem):
    got, problems = annotation_to_yolo(result, NAMES, "task 1")
    if problem is None:
        assert problems == [] and got == text
    else:
        assert len(problems) == 1 and problem in problems[0] and problems[0].startswith("task 1")


def test_a_bad_region_does_not_hide_the_others():
    result = [_region("horse", 1, 1, 5, 5), _region("cat", 10, 20, 30, 40), _region("emu", 1, 1, 5, 5)]
    text, problems = annotation_to_yolo(result, NAMES, "t")
    assert text.startswith("0 ") and len(problems) == 2


_unit = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(boxes=st.lists(st.tuples(st.integers(0, 2), _unit, _unit, _unit, _unit), max_size=6),
       order=st.permutations(range(3)), width=st.integers(1, 4000), height=st.integers(1, 4000))
def test_prelabels_survive_label_studio_coordinates(boxes, order, width, height):
    """YOLO -> Label Studio percent -> YOLO keeps every box to the written 6 decimals, by name."""
    names = [NAMES[i] for i in order]
    lines = []
    for cls, a, b, c, d in boxes:
        x1, x2 = sorted((a, c))
        y1, y2 = sorted((b, d))
        if x2 - x1 < 1e-5 or y2 - y1 < 1e-5:
            continue
        lines.append(f"{cls} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
    regions = prediction_regions("\n".join(lines), names, width, height, "pre.txt")
    assert [r["value"]["rectanglelabels"][0] for r in regions] == [names[int(s[0])] for s in lines]
    text, problems = annotation_to_yolo(regions, names, "t")
    assert problems == []
    back = [list(map(float, line.split())) for line in text.splitlines()]
    sent = [list(map(float, line.split())) for line in lines]
    assert len(back) == len(sent)
    for got, want in zip(back, sent):
        assert got[0] == want[0]
        assert all(math.isclose(g, w, abs_tol=2e-6) for g, w in zip(got[1:], want[1:])), (got, want)


def test_prediction_regions_carry_the_confidence_column():
    regions = prediction_regions("1 0.5 0.5 0.2 0.4 0.875\n0 0.1 0.1 0.1 0.1\n", NAMES, 200, 100, "p")
    assert regions[0]["score"] == 0.875 and "score" not in regions[1]
    assert regions[0]["value"] == {"x": 40.0, "y": 30.0, "width": 20.0, "height": 40.0,
                                   "rotation": 0, "rectanglelabels": ["dog"]}
    assert regions[0]["original_width"] == 200 and regions[0]["original_height"] == 100


def _scored(label, x, y, w, h, score):
    return {"value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
            "score": score}


@pytest.mark.parametrize("scored, expected", [
    ([], [None, None]),
    ([_scored("dog", 40, 30, 20, 40, 0.9)], [0.9, None]),
    ([_scored("dog", 40.0004, 30, 20, 40, 0.9)], [0.9, None]),  # rounding of the same numbers
    ([_scored("cat", 40, 30, 20, 40, 0.9)], [None, None]),  # another class
    ([_scored("dog", 40.01, 30, 20, 40, 0.9)], [None, None]),  # another box
    ([_scored("cat", 10, 10, 10, 10, 0.3), _scored("dog", 40, 30, 20, 40, 0.9)], [0.9, 0.3]),
    ([{"value": {}}, _scored("cat", 10, 10, 10, 10, 0.3)], [None, 0.3]),  # unreadable: skipped
])
def test_attach_scores(scored, expected):
    regions = prediction_regions("1 0.5 0.5 0.2 0.4\n0 0.15 0.15 0.1 0.1\n", NAMES, 200, 100, "p")
    got = attach_scores(regions, scored)
    assert [r.get("score") for r in got] == expected
    assert [r["value"] for r in got] == [r["value"] for r in regions]


def test_a_region_that_has_a_score_keeps_it():
    regions = prediction_regions("1 0.5 0.5 0.2 0.4 0.25\n", NAMES, 200, 100, "p")
    assert attach_scores(regions, [_scored("dog", 40, 30, 20, 40, 0.9)])[0]["score"] == 0.25


@pytest.mark.parametrize("config, classes", [
    (labeling_config(NAMES), NAMES),
    (labeling_config(["b", "a"]), ["b", "a"]),
    ("<View><Image name='i' value='$i'/></View>", None),
    ("<View", None),
])
def test_config_classes(config, classes):
    assert config_classes(config) == classes


# -- CLI errors that need no server -------------------------------------------------------
@pytest.mark.parametrize("argv, env, fragment", [
    (["push", "{p}", "--label-studio", "http://127.0.0.1:{port}"], {"LABEL_STUDIO_API_KEY": "t"},
     "cannot reach Label Studio at http://127.0.0.1:{port}: connection refused"),
    (["pull", "{p}", "--label-studio", "http://127.0.0.1:{port}"], {"LABEL_STUDIO_API_KEY": "t"},
     "nothing pushed to Label Studio yet"),
    (["push", "{p}", "--label-studio", "http://127.0.0.1:{port}"], {},
     "no Label Studio token: set LABEL_STUDIO_API_KEY"),
    (["push", "{p}"], {"LABEL_STUDIO_API_KEY": "t"}, "no Label Studio URL"),
    (["push", "{p}", "--label-studio", "127.0.0.1:{port}"], {"LABEL_STUDIO_API_KEY": "t"},
     "must look like http://host:8080"),
    (["push", "{p}/nope", "--label-studio", "http://127.0.0.1:{port}"], {"LABEL_STUDIO_API_KEY": "t"},
     "not a detal project"),
    (["push", "{p}", "--label-studio", "http://127.0.0.1:{port}"], {"LABEL_STUDIO_API_KEY": "t",
                                                                   "all-in": "1"},
     "no batch is out, nothing to push"),
])
def test_cli_errors_without_a_server(tmp_path, monkeypatch, capsys, argv, env, fragment):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    for k, v in env.items():
        if k.startswith("LABEL_STUDIO"):
            monkeypatch.setenv(k, v)
    project = make_project(tmp_path, n=20)
    if "all-in" in env:
        label_cycle(project, 0, tmp_path)
    before = snapshot(project)
    port = free_port()
    args = [a.format(p=project, port=port) for a in argv]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("detal: error: ")
    assert fragment.format(port=port) in err[0]
    assert snapshot(project) == before


def test_the_token_is_never_an_argument(tmp_path):
    project = make_project(tmp_path, n=20)
    with pytest.raises(SystemExit) as exc:
        main(["push", str(project), "--label-studio", "http://127.0.0.1:9", "--token", "secret"])
    assert exc.value.code == 2


def test_push_tasks_of_a_plain_cycle_carry_the_shipped_confidences(tmp_path):
    """Without a Label Studio export, the regions get their scores from cycles/<k>/shipped.json."""
    from reviewkit import project_with_cycle

    from detal.labelstudio.push import _scored_regions, _task
    from detal.store import Store

    project = project_with_cycle(tmp_path, formats=("yolo",))
    names = list(NAMES)
    shipped = json.loads((project / "cycles/1/shipped.json").read_text())["images"]
    scored = _scored_regions(project, 1, names)
    with Store.open(project / "detal.db") as store:
        rows = store.images(selected_cycle=1)
    n = 0
    for row in rows:
        task = _task(project, row, names, "", None, None, scored)
        got = sorted(r["score"] for r in task["predictions"][0]["result"])
        assert got == pytest.approx(sorted(b[5] for b in shipped[row.key]), abs=1e-6)
        n += len(got)
    assert n > 0
    (project / "cycles/1/shipped.json").unlink()
    assert _scored_regions(project, 1, names) == {}
