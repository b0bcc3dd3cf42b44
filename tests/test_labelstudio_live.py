"""``detal push`` / ``detal pull`` against a real Label Studio 1.23.2 server.

The server runs from ``.venv-ls`` (``make label-studio``) on 127.0.0.1 with a
throwaway data dir (see lsserver.py); the module starts it once and stops it
by PID. Without ``.venv-ls``, the fixture tries to build it, and the tests
skip with the reason only when that fails too.

The annotator is played through the API: accept predictions, move, delete
and add boxes, annotate twice, skip, leave tasks alone. Expected labels are
computed here from the percent boxes sent, independently of detal's converter.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import lsserver
import pytest
from projectkit import NAMES, label_cycle, make_project, snapshot

from detal import labelstudio as ls_mod
from detal.cli import main
from detal.fake import FakeAdapter
from detal.labelstudio import client as client_mod
from detal.labelstudio import pull as pull_mod
from detal.project import run_cycle


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not lsserver.available():
        ok, tail = lsserver.build()
        if not ok:
            pytest.skip("LABEL STUDIO TESTS SKIPPED: .venv-ls is missing and `make label-studio` "
                        f"failed: {tail}")
    srv = lsserver.Server(lsserver.fresh_data(tmp_path_factory.mktemp("label-studio")))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def env(server, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    return server


def _batch_project(tmp_path: Path, n: int = 300, formats=("yolo",)) -> Path:
    """Initial batch labeled, cycle 1 run with the fake adapter: n/10 images out with pre-labels."""
    project = make_project(tmp_path, n=n)
    label_cycle(project, 0, tmp_path)
    run_cycle(project, FakeAdapter(len(NAMES), seed=2), formats=list(formats))
    return project


def _db(project: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{project / 'detal.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _tasks(server, ls_project: int) -> list[dict]:
    page = server.api("GET", f"/api/tasks?project={ls_project}&fields=all&page_size=1000")
    return sorted(page["tasks"], key=lambda t: t["id"])


def _push(project: Path, server, *extra) -> int:
    assert main(["push", str(project), "--label-studio", server.url, *extra]) == 0
    return int(_db(project, "SELECT value FROM meta WHERE key = 'label_studio'")[0][0]
               .split('"project": ')[1].rstrip("}"))


def _annotate(server, task_id: int, result: list[dict], *, skip: bool = False) -> dict:
    """Submit an annotation as the labeling UI does (a skip is ``?was_cancelled=1``)."""
    query = "?was_cancelled=1" if skip else ""
    return server.api("POST", f"/api/tasks/{task_id}/annotations/{query}", {"result": result})


def _box(label, x, y, w, h, ow, oh, rid):
    return {"id": rid, "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": ow, "original_height": oh, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                      "rectanglelabels": [label]}}


def _yolo(result: list[dict]) -> list[list[float]]:
    """What the project must hold for an annotation: class index by name, centre and size."""
    out = []
    for r in result:
        v = r["value"]
        out.append([NAMES.index(v["rectanglelabels"][0]), (v["x"] + v["width"] / 2) / 100,
                    (v["y"] + v["height"] / 2) / 100, v["width"] / 100, v["height"] / 100])
    return out


def _labels_of(project: Path, relpath: str) -> list[list[float]] | None:
    path = project / "labels" / Path(relpath).with_suffix(".txt")
    if not path.is_file():
        return None
    return [[float(x) for x in line.split()] for line in path.read_text().splitlines() if line.strip()]


def _same(got, want) -> bool:
    return got is not None and len(got) == len(want) and all(
        g[0] == w[0] and all(math.isclose(a, b, abs_tol=2e-6) for a, b in zip(g[1:], w[1:]))
        for g, w in zip(got, want))


# -- the round trip ----------------------------------------------------------------------
def test_round_trip(env, tmp_path, capsys, network_attempts):
    server = env
    project = _batch_project(tmp_path)
    out_rows = _db(project, "SELECT id, key, relpath, width, height FROM images "
                            "WHERE status = 'selected' ORDER BY id")
    assert len(out_rows) == 30
    pid = _push(project, server)
    assert "pushed 30 images (30 with pre-labels) to created Label Studio project" in capsys.readouterr().out

    tasks = _tasks(server, pid)
    assert len(tasks) == 30
    by_key = {t["data"]["detal_key"]: t for t in tasks}
    recorded = dict(_db(project, "SELECT image_id, task_id FROM label_studio_tasks"))
    assert {recorded[i] for i, *_ in out_rows} == {t["id"] for t in tasks}
    scores = dict(_db(project, "SELECT image_id, score FROM scores WHERE cycle = 1"))
    top = max(max(scores.values()), 1.0)
    for image_id, key, *_ in out_rows:
        task = by_key[key]
        (pred,) = task["predictions"]
        pre = (project / "cycles/1/prelabels" / f"{key}.txt").read_text().splitlines()
        assert pred["model_version"] == "cycle-1" and len(pred["result"]) == len(pre)
        assert math.isclose(pred["score"], 1 - scores[image_id] / top, abs_tol=1e-6)
        assert math.isclose(task["data"]["uncertainty"], scores[image_id], abs_tol=1e-6)
        assert _same(_yolo(pred["result"]), [[float(x) for x in line.split()] for line in pre])
        # the image is served by the server itself (upload, not local files)
        assert task["data"]["image"].startswith(f"/data/upload/{pid}/")

    # Pushing again adds nothing.
    assert _push(project, server) == pid
    assert "pushed 0 images" in capsys.readouterr().out and len(_tasks(server, pid)) == 30

    # The annotator. Six kinds of task, in turn; the expected YOLO boxes are noted per key.
    expected: dict[str, list[list[float]]] = {}
    unannotated: list[str] = []
    for n, (_, key, _, ow, oh) in enumerate(out_rows):
        task = by_key[key]
        pred = task["predictions"][0]["result"]
        kind = n % 6
        if kind == 0:  # accept the prediction unchanged
            result = [dict(r, id=f"a{k}") for k, r in enumerate(pred)]
            for r in result:
                r.pop("score", None)
        elif kind == 1:  # move every box (kept inside the image)
            result = []
            for k, r in enumerate(pred):
                v = r["value"]
                x = min(100 - v["width"], v["x"] + 3.25)
                y = max(0.0, v["y"] - 1.5)
                result.append(_box(v["rectanglelabels"][0], x, y, v["width"], v["height"], ow, oh, f"m{k}"))
        elif kind == 2:  # delete some boxes (every other one; all of them on a one-box image)
            result = [dict(r, id=f"d{k}") for k, r in enumerate(pred) if k % 2 == 1]
        elif kind == 3:  # add a box of each class by name, keep the rest
            result = [dict(r, id=f"k{k}") for k, r in enumerate(pred)]
            result += [_box("bird", 5, 10, 20.5, 30.125, ow, oh, "n0"),
                       _box("dog", 60, 50, 12.345678, 40, ow, oh, "n1")]
        elif kind == 4:  # leave alone, or skip (a cancelled annotation does not count)
            if n % 12 == 10:
                skipped = _annotate(server, task["id"], [], skip=True)
                assert skipped["was_cancelled"] is True
            unannotated.append(key)
            continue
        else:  # two annotators: the later one counts, unless the earlier one is ground truth
            first = _annotate(server, task["id"], [_box("cat", 1, 1, 10, 10, ow, oh, "f")])
            result = [_box("dog", 40, 40, 25, 25, ow, oh, "s")]
            if n % 12 == 11:
                server.api("PATCH", f"/api/annotations/{first['id']}", {"ground_truth": True})
                _annotate(server, task["id"], result)
                expected[key] = _yolo(first["result"])
                continue
        _annotate(server, task["id"], result)
        expected[key] = _yolo(result)
    assert len(unannotated) == 5 and len(expected) == 25

    assert main(["pull", str(project)]) == 0
    out = capsys.readouterr().out
    assert "imported 25 labels (0 unchanged, 0 overwritten)" in out
    assert "5 tasks unannotated; 5 images still out" in out
    status = dict(_db(project, "SELECT key, status FROM images"))
    for _, key, relpath, *_ in out_rows:
        if key in unannotated:
            assert status[key] == "selected" and _labels_of(project, relpath) is None
        else:
            assert status[key] == "labeled", key
            assert _same(_labels_of(project, relpath), expected[key]), (key, expected[key])

    # Pulling again changes nothing; annotating the rest and pulling brings them in.
    before = snapshot(project)
    assert main(["pull", str(project)]) == 0
    assert "imported 0 labels" in capsys.readouterr().out and snapshot(project) == before
    for key in unannotated:
        _annotate(server, by_key[key]["id"], [])  # "no objects in this image"
    assert main(["pull", str(project)]) == 0
    assert "imported 5 labels" in capsys.readouterr().out
    assert all(_labels_of(project, r) == [] for _, k, r, *_ in out_rows if k in unannotated)
    assert _db(project, "SELECT count(*) FROM images WHERE status = 'selected'") == [(0,)]
    assert network_attempts == []


def test_box_scores_come_from_the_cycles_label_studio_export(env, tmp_path):
    """The pre-label files have no confidence column; the export written by
    ``detal cycle --format label-studio`` has, and push gives each box its score."""
    project = _batch_project(tmp_path, n=100, formats=("yolo", "label-studio"))
    exported = json.loads((project / "cycles/1/exports/label-studio/tasks.json").read_text())
    scores = {Path(t["data"]["image"]).stem: [r["score"] for r in t["predictions"][0]["result"]]
              for t in exported}
    pid = _push(project, env)
    tasks = _tasks(env, pid)
    assert sum(len(v) for v in scores.values()) > 10
    for task in tasks:
        got = [r.get("score") for r in task["predictions"][0]["result"]]
        assert got == scores[task["data"]["detal_key"]]


def test_box_scores_of_a_plain_cycle_come_from_its_shipped_predictions(env, tmp_path):
    """A plain ``detal cycle`` (no --format): every pushed box has the confidence it was shipped with."""
    project = _batch_project(tmp_path, n=100)
    shipped = json.loads((project / "cycles/1/shipped.json").read_text())["images"]
    tasks = _tasks(env, _push(project, env))
    assert sum(len(v) for v in shipped.values()) > 10
    for task in tasks:
        got = [r["score"] for r in task["predictions"][0]["result"]]
        assert sorted(got) == pytest.approx(sorted(b[5] for b in shipped[task["data"]["detal_key"]]), abs=1e-6)


def test_push_again_adopts_tasks_a_killed_push_did_not_record(env, tmp_path, capsys):
    project = _batch_project(tmp_path, n=100)
    pid = _push(project, env)
    with sqlite3.connect(project / "detal.db") as conn:  # as if killed before the record
        conn.execute("DELETE FROM label_studio_tasks WHERE image_id IN "
                     "(SELECT image_id FROM label_studio_tasks LIMIT 4)")
    capsys.readouterr()
    assert _push(project, env) == pid
    out = capsys.readouterr().out
    assert "pushed 0 images" in out and "10 already there (4 found on the server)" in out
    assert len(_tasks(env, pid)) == 10
    assert _db(project, "SELECT count(*) FROM label_studio_tasks") == [(10,)]


def test_client_lists_only_the_tasks_asked_for(env, tmp_path, monkeypatch):
    project = _batch_project(tmp_path, n=100)
    pid = _push(project, env)
    all_ids = [t["id"] for t in _tasks(env, pid)]
    monkeypatch.setattr(client_mod, "_IDS_PER_QUERY", 3)
    client = ls_mod.Client(env.url, env.token)
    wanted = all_ids[1:9:2] + all_ids[-1:] + [10**9]  # the last one does not exist
    got = list(client.tasks(pid, page_size=2, ids=wanted))
    assert sorted(t["id"] for t in got) == sorted(wanted[:-1])
    assert all(isinstance(t["annotations"], list) and "data" in t for t in got)
    assert len(list(client.tasks(pid, include="id", page_size=3))) == len(all_ids) == 10


def test_personal_access_token_is_refreshed_on_401(env, tmp_path, monkeypatch, capsys):
    server = env
    tokens = server.api("GET", "/api/token/")
    refresh = server.api("POST", "/api/token/", {})["token"] if not tokens else None
    if refresh is None:  # one per user; a previous test run made it
        pytest.skip("a personal access token exists already")
    token_file = tmp_path / "pat"
    token_file.write_text(refresh + "\n")
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    project = _batch_project(tmp_path, n=100)
    assert main(["push", str(project), "--label-studio", server.url, "--token-file", str(token_file)]) == 0
    assert "pushed 10 images" in capsys.readouterr().out

    client = ls_mod.Client(server.url, refresh)
    assert client.kind == "refresh"
    client.request("GET", "/api/projects")
    assert client.n_refreshes == 1
    client._access = client._access[:-4] + "AAAA"  # an access token the server no longer takes
    client.request("GET", "/api/projects")
    assert client.n_refreshes == 2
    report = ls_mod.pull_labels(project, client=client)
    assert report.n_unannotated == 10 and report.n_labeled == 0

    bad = tmp_path / "bad"
    bad.write_text(refresh[:-6] + "AAAAAA")
    before = snapshot(project)
    assert main(["pull", str(project), "--token-file", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rejected the personal access token (HTTP 401" in err[0]
    assert snapshot(project) == before


# -- bad input: one line, exit 1, project unchanged ------------------------------------------
def case_wrong_url(project, server, monkeypatch):
    return ["pull", str(project), "--label-studio", f"http://127.0.0.1:{lsserver.free_port()}"], \
        "connection refused"


def case_wrong_url_on_push(project, server, monkeypatch):
    return ["push", str(project), "--relink", "--label-studio",
            f"http://127.0.0.1:{lsserver.free_port()}"], "connection refused"


def case_wrong_token(project, server, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "f" * 40)
    return ["pull", str(project)], "rejected the token (HTTP 401: Invalid token.)"


def case_wrong_token_on_push(project, server, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "f" * 40)
    return ["push", str(project)], "rejected the token (HTTP 401: Invalid token.)"


def case_project_deleted(project, server, monkeypatch):
    server.api("DELETE", f"/api/projects/{_pid(project)}")
    return ["pull", str(project)], "no longer exists (deleted on the server?)"


def case_project_deleted_on_push(project, server, monkeypatch):
    server.api("DELETE", f"/api/projects/{_pid(project)}")
    return ["push", str(project)], "--relink creates a new one"


def _wh(project: Path, task: dict) -> tuple[int, int]:
    """The image's size as the project holds it (as displayed), which pull checks regions against."""
    return _db(project, "SELECT width, height FROM images WHERE key = ?", (task["data"]["detal_key"],))[0]


def case_label_not_in_classes(project, server, monkeypatch):
    tasks = _tasks(server, _pid(project))
    _annotate(server, tasks[0]["id"], [_box("cat", 10, 10, 20, 20, *_wh(project, tasks[0]), "ok")])
    _annotate(server, tasks[1]["id"], [_box("horse", 10, 10, 20, 20, *_wh(project, tasks[1]), "bad")])
    return ["pull", str(project)], "label 'horse' is not one of the project's classes (cat, dog, bird)"


def case_rotated_box(project, server, monkeypatch):
    tasks = _tasks(server, _pid(project))
    box = _box("dog", 10, 10, 20, 20, *_wh(project, tasks[2]), "rot")
    box["value"]["rotation"] = 15
    _annotate(server, tasks[2]["id"], [box])
    return ["pull", str(project)], "rotated by 15 degrees"


def case_other_classes_on_server(project, server, monkeypatch):
    server.api("PATCH", f"/api/projects/{_pid(project)}", {"label_config": (
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
        '<Label value="bird"/><Label value="cat"/><Label value="dog"/></RectangleLabels></View>')})
    return ["push", str(project)], "labels with (bird, cat, dog), not the project's classes in order"


def _pid(project: Path) -> int:
    return int(_db(project, "SELECT DISTINCT project FROM label_studio_tasks")[0][0])


CASES = [case_wrong_url, case_wrong_url_on_push, case_wrong_token, case_wrong_token_on_push,
         case_project_deleted, case_project_deleted_on_push, case_label_not_in_classes,
         case_rotated_box, case_other_classes_on_server]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_input(case, env, tmp_path, monkeypatch, capsys):
    project = _batch_project(tmp_path, n=100)
    _push(project, env)
    capsys.readouterr()
    argv, fragment = case(project, env, monkeypatch)
    before = snapshot(project)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("detal: error: "), err
    assert fragment in err[0], err[0]
    assert snapshot(project) == before


def test_relink_after_the_project_was_deleted(env, tmp_path, capsys):
    project = _batch_project(tmp_path, n=100)
    old = _push(project, env)
    env.api("DELETE", f"/api/projects/{old}")
    new = _push(project, env, "--relink")
    assert new != old and "pushed 10 images" in capsys.readouterr().out
    assert len(_tasks(env, new)) == 10


def test_pull_overwrite_brings_later_corrections(env, tmp_path, capsys):
    project = _batch_project(tmp_path, n=100)
    pid = _push(project, env)
    tasks = _tasks(env, pid)
    rows = dict(_db(project, "SELECT key, relpath FROM images"))
    first = [_annotate(env, t["id"], [_box("cat", 10, 10, 20, 20, *_wh(project, t), "a")]) for t in tasks[:3]]
    assert main(["pull", str(project)]) == 0
    assert "imported 3 labels" in capsys.readouterr().out
    key = tasks[0]["data"]["detal_key"]
    fixed = [_box("bird", 50, 50, 30, 30, *_wh(project, tasks[0]), "b")]
    env.api("PATCH", f"/api/annotations/{first[0]['id']}", {"result": fixed})
    before = snapshot(project)
    assert main(["pull", str(project)]) == 0  # labeled images are not pulled again by default
    assert "imported 0 labels" in capsys.readouterr().out and snapshot(project) == before
    assert main(["pull", str(project), "--overwrite"]) == 0
    assert "imported 0 labels (2 unchanged, 1 overwritten)" in capsys.readouterr().out
    assert _same(_labels_of(project, rows[key]), _yolo(fixed))
    assert len(list((project / "labels/.replaced").rglob("*.txt"))) == 1


def test_server_stops_in_the_middle_of_a_pull(env, tmp_path, monkeypatch, capsys):
    """Last in the module: it stops the shared server, then starts it again."""
    server = env
    project = _batch_project(tmp_path, n=100)
    pid = _push(project, server)
    for task in _tasks(server, pid)[:6]:
        _annotate(server, task["id"], [_box("cat", 10, 10, 20, 20, *_wh(project, task), "c")])
    capsys.readouterr()
    monkeypatch.setattr(pull_mod, "_PAGE", 3)
    real = ls_mod.Client.request
    pages: list[str] = []

    def request(self, method, path, **kw):
        if path.startswith("/api/tasks"):
            pages.append(path)
            if len(pages) == 2:
                server.stop()
        return real(self, method, path, **kw)

    monkeypatch.setattr(ls_mod.Client, "request", request)
    before = snapshot(project)
    try:
        assert main(["pull", str(project)]) == 1
    finally:
        server.start()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach Label Studio" in err[0] and "connection refused" in err[0]
    assert len(pages) == 2 and snapshot(project) == before
    monkeypatch.setattr(ls_mod.Client, "request", real)
    assert main(["pull", str(project)]) == 0  # once it is back, the same pull goes through
    assert "imported 6 labels" in capsys.readouterr().out
