"""The ``scoring`` block and the engine registry, without a Ray cluster (ray need not be installed).

The Ray engine itself, on a real local cluster, is tested in ``tests/test_ray.py``.
"""

from __future__ import annotations

import sys

import pytest
from projectkit import label_cycle, make_images, make_project, snapshot

from detal.cli import main
from detal.config import SCORING, load_config
from detal.engines import ENGINES, open_engine
from detal.errors import ConfigError
from detal.fake import FakeAdapter

NO_RAY = ("scoring.engine: ray needs the ray package with Ray Data, which is not installed; "
          "install it with pip install 'detal[ray]'")


def test_scoring_defaults_to_the_local_engine_and_keys_merge():
    assert load_config().scoring == SCORING == {"engine": "local", "address": None, "workers": None}
    cfg = load_config(None, ["scoring.engine=ray", "scoring.address=127.0.0.1:6379", "scoring.workers=2"])
    assert cfg.scoring == {"engine": "ray", "address": "127.0.0.1:6379", "workers": 2}
    assert load_config(None, ["scoring.address=ray://head:10001"]).scoring["engine"] == "local"
    assert set(ENGINES) == {"local", "ray"}


@pytest.mark.parametrize("overrides, message", [
    (["scoring.engine=rya"], "scoring.engine must be one of local, ray, got 'rya'; did you mean 'ray'?"),
    (["scoring.engine=1"], "scoring.engine must be one of local, ray, got 1"),
    (["scoring.wrokers=2"], ("scoring: unknown key 'wrokers'; expected one of engine, address, workers; "
                             "did you mean 'workers'?")),
    (["scoring.workers=0"], "scoring.workers must be an integer in [1, 4096] or null (one per GPU), got 0"),
    (["scoring.workers=true"], "scoring.workers must be an integer in [1, 4096] or null"),
    (["scoring.workers=2.5"], "scoring.workers must be an integer in [1, 4096] or null"),
    (["scoring.address=head"], ("scoring.address must be null (a local Ray instance), auto, HOST:PORT or "
                                "ray://HOST:PORT, got 'head'")),
    (["scoring.address=head:0"], "got 'head:0'"),
    (["scoring.address=head:99999"], "got 'head:99999'"),
    (["scoring.address=:6379"], "got ':6379'"),
    (["scoring.address=ray://head:x"], "got 'ray://head:x'"),
])
def test_bad_scoring_values_are_one_config_error(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_config_file_with_a_bad_scoring_block_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scoring:\n  engine: spark\n")
    with pytest.raises(ConfigError, match=rf"^{path}: scoring.engine must be one of local, ray, got 'spark'"):
        load_config(path)


def test_the_local_engine_is_the_adapter_itself():
    adapter = FakeAdapter(3)
    with open_engine(load_config(), adapter) as predictor:
        assert predictor is adapter


def _without_ray(monkeypatch):
    """Make ``import ray`` fail as it does where the package is not installed."""
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)


def test_without_ray_the_engine_is_one_line_naming_the_extra(monkeypatch):
    _without_ray(monkeypatch)
    with pytest.raises(ConfigError) as err, open_engine(load_config(None, ["scoring.engine=ray"]), FakeAdapter(3)):
        pass
    assert str(err.value) == NO_RAY


def test_without_ray_detal_cycle_says_so_and_leaves_the_project_unchanged(tmp_path, monkeypatch, capsys):
    project = make_project(tmp_path)
    label_cycle(project, 0, tmp_path)
    monkeypatch.setenv("DETAL_FAKE_ADAPTER", "1")
    _without_ray(monkeypatch)
    before = snapshot(tmp_path)
    assert main(["cycle", str(project), "--set", "scoring.engine=ray"]) == 1
    err = capsys.readouterr().err
    assert err == f"detal: error: {NO_RAY}\n"
    assert snapshot(tmp_path) == before


def test_without_ray_detal_score_says_so_before_writing(tmp_path, monkeypatch, capsys):
    make_images(tmp_path / "pool", 3)
    weights = tmp_path / "w.pt"
    weights.write_text("{}")
    monkeypatch.setenv("DETAL_FAKE_ADAPTER", "1")
    _without_ray(monkeypatch)
    out = tmp_path / "scores.csv"
    argv = ["score", "--weights", str(weights), "--images", str(tmp_path / "pool"), "--out", str(out),
            "--quiet", "--set", "scoring.engine=ray"]
    assert main(argv) == 1
    assert capsys.readouterr().err == f"detal: error: {NO_RAY}\n"
    assert not out.exists()
