"""The Ray engine (``scoring.engine: ray``) on a real local Ray cluster, against the local engine.

One cluster for the module: started in this process on 127.0.0.1 (Ray's
local-only mode), two CPUs, no dashboard, no token file, no usage report; the
engine reaches it through ``scoring.address``. Nothing leaves loopback.

The model is real: an untrained yolov8n (2 classes, imgsz 64) whose last
class-score convolutions are drawn at random, so that noise images get boxes
with varied class vectors. The cycle's driver adapter trains nothing (it
hands back those weights) and predicts with the real Ultralytics adapter; the
Ray workers build the real adapter from the config. On the CPU the two engines
agree exactly, float for float: each worker runs the same ``predict`` on the
same images and weights, one thread each, and the forward pass of an image does
not depend on the other images of its batch, so scores, picks, embeddings and
pre-labels are compared with ``==``.

The module skips, loudly, where ray is not importable (``make test`` installs
the ``ray`` extra).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from projectkit import db_rows, snapshot, write_classes, write_returned

# Read by Ray when it is imported: the test cluster is local-only (127.0.0.1, no probe of a public
# address), writes no token to ~/.ray (nothing outside loopback can reach it) and sends no usage report.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ray = pytest.importorskip(
    "ray", reason="ray is not installed (make test installs the ray extra): the Ray engine is NOT tested")
pytest.importorskip("ray.data", reason="ray is installed without Ray Data (pyarrow, pandas): the Ray engine "
                                       "is NOT tested")
cv2 = pytest.importorskip("cv2")

from detal.adapter import TrainResult, make_adapter
from detal.cli import main
from detal.config import load_config
from detal.errors import ModelError, RemoteError
from detal.project import import_labels, init_project, project_config, run_cycle
from detal.score_images import score_images

# The killing adapter below is defined here; Ray's workers get it by value, not by importing this file.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

NAMES = ["cat", "dog"]
SETTINGS = ["model=yolov8n.yaml", "imgsz=64", "device=cpu", "predict_batch=2", "epochs_per_cycle=1",
            "initial_fraction=0.125", "batch_fraction=0.125", "subset_fraction=0.5", "seed=3"]


@pytest.fixture(scope="module")
def cluster():
    """The address of a Ray cluster started in this process, on 127.0.0.1 with 2 CPUs."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=200 * 2**20)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), f"{address}: ray was imported before this module set its env"
        yield address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    import torch

    from detal.ultra import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=2, verbose=False)
    model.names = dict(enumerate(NAMES))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for branch in model.model[-1].cv3:
            branch[-1].weight.copy_(torch.randn(branch[-1].weight.shape, generator=gen) * 0.5)
            branch[-1].bias.fill_(-1.0)
    path = tmp_path_factory.mktemp("weights") / "random.pt"
    torch.save({"model": model.eval(), "train_args": {}}, path)
    return path


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """24 noise images of three sizes (three letterboxed shapes), and one file that is not an image."""
    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    for i in range(24):
        image = rng.integers(0, 255, (40 + 8 * (i % 3), 56, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f"im{i:02d}.png"), image)
    return root


class FixedWeights:
    """A driver adapter that trains nothing (it returns ``weights``) and predicts with the real adapter."""

    def __init__(self, cfg, weights: Path) -> None:
        self.real = make_adapter(cfg)
        self.weights = weights

    def train(self, train_items, val_items, names, out_dir, *, epochs, init_weights=None):
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.weights, out / "weights.pt")
        return TrainResult(out / "weights.pt", None, 0.0, epochs)

    def evaluate(self, *args, **kwargs):
        raise AssertionError("the test project has no val split")

    def predict(self, *args, **kwargs):
        return self.real.predict(*args, **kwargs)

    def class_names(self, weights):
        return self.real.class_names(weights)

    def log_to(self, *args, **kwargs):
        return self.real.log_to(*args, **kwargs)


def killing_adapter(cfg, *, marker: str):
    """The real adapter, whose worker dies (``os._exit``) on the second batch it is given, once in all."""
    return Killer(make_adapter(cfg), marker)


class Killer:
    def __init__(self, adapter, marker: str) -> None:
        self.adapter, self.marker, self.calls = adapter, marker, 0

    def predict(self, weights, images, **kwargs):
        self.calls += 1
        if self.calls == 2:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os._exit(1)  # as a killed or out-of-memory worker: no exception, no clean-up
        return self.adapter.predict(weights, images, **kwargs)


def make_ray_project(root: Path, pool: Path, name: str, *extra: str) -> Path:
    classes = write_classes(root / "classes.txt", NAMES)
    project = root / name
    init_project(project, pool, classes, config=load_config(None, [*SETTINGS, *extra]))
    import_labels(project, write_returned(root / f"{name}-returned0", project, 0))
    return project


def cycle(project: Path, weights: Path, *overrides: str, worker_adapter=None):
    adapter = FixedWeights(project_config(project, overrides), weights)
    return run_cycle(project, adapter, overrides=overrides, worker_adapter=worker_adapter)


def outcome(project: Path, k: int = 1) -> dict:
    """What a cycle decided: every image row (picks), every score row (scores, embeddings), the pre-labels."""
    rows = db_rows(project)
    cycle_dir = project / "cycles" / str(k)
    with zipfile.ZipFile(cycle_dir / f"batch-{k}.zip") as zf:
        manifest = zf.read("manifest.csv").decode()
    prelabels = {p.name: p.read_text() for p in sorted((cycle_dir / "prelabels").glob("*.txt"))}
    return {"images": rows["images"], "scores": rows["scores"], "manifest": manifest, "prelabels": prelabels,
            "shipped": (cycle_dir / "shipped.json").read_text()}


def ray_set(address: str, workers: int) -> list[str]:
    return ["scoring.engine=ray", f"scoring.address={address}", f"scoring.workers={workers}"]


@pytest.mark.slow
def test_a_cycle_on_ray_scores_picks_and_prelabels_as_the_local_engine(cluster, weights, pool, tmp_path):
    # hybrid: the subset's scores, the labeled images' embeddings and the random picks' pre-labels all
    # come from the engine, in three predict calls; two workers, batches of 2 over three image shapes.
    local = make_ray_project(tmp_path, pool, "local")
    on_ray = make_ray_project(tmp_path, pool, "ray")
    assert cycle(local, weights).n_selected == 3
    report = cycle(on_ray, weights, *ray_set(cluster, 2))
    assert report.n_selected == 3
    expected, got = outcome(local), outcome(on_ray)
    assert got == expected
    # the comparison has teeth: the subset was scored, with boxes, distinct scores and embeddings
    scores = expected["scores"]
    assert len(scores) >= 12 and len({r[2] for r in scores}) >= 10 and sum(r[3] for r in scores) > 0
    assert all(r[6] is not None for r in scores)
    assert any(text for text in expected["prelabels"].values())


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_and_the_cycle_is_unchanged(cluster, weights, pool, tmp_path):
    # topk scores all 21 unlabeled images in one run of 11 batches over two workers; one worker dies at
    # its second batch (after the pool has returned results), Ray restarts it and runs the batch again.
    local = make_ray_project(tmp_path, pool, "local", "strategy=topk")
    killed = make_ray_project(tmp_path, pool, "killed", "strategy=topk")
    marker = tmp_path / "killed-pid"
    cycle(local, weights)
    factory = lambda cfg: killing_adapter(cfg, marker=str(marker))  # shipped to the workers by value
    cycle(killed, weights, *ray_set(cluster, 2), worker_adapter=factory)
    assert marker.is_file() and int(marker.read_text()) != os.getpid()  # a worker did die
    assert outcome(killed) == outcome(local)
    assert len(outcome(local)["scores"]) == 21


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_cluster_is_one_line_and_the_project_is_unchanged(tmp_path, pool, monkeypatch, capsys):
    monkeypatch.setenv("DETAL_FAKE_ADAPTER", "1")
    project = make_ray_project(tmp_path, pool, "proj")
    before = snapshot(tmp_path)
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    argv = ["cycle", str(project), "--set", "scoring.engine=ray", "--set", f"scoring.address={address}"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"detal: error: scoring.address {address}: cannot reach the Ray cluster (")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert snapshot(tmp_path) == before
    with pytest.raises(RemoteError, match="cannot reach the Ray Client server"):
        score_images(Path(__file__), [], load_config(None, ["scoring.engine=ray",
                                                            f"scoring.address=ray://{address}"]))


def test_detal_score_on_ray_writes_the_local_engine_csv(cluster, weights, pool, tmp_path, capsys):
    (tmp_path / "pool").mkdir()
    for p in sorted(pool.glob("*.png"))[:7]:
        shutil.copy(p, tmp_path / "pool" / p.name)
    (tmp_path / "pool" / "broken.png").write_bytes(b"not a png")
    argv = ["score", "--weights", str(weights), "--images", str(tmp_path / "pool"), "--quiet",
            "--embeddings", "X", "--set", "imgsz=64", "--set", "device=cpu", "--set", "predict_batch=3"]
    csvs, npzs = [], []
    for engine, extra in (("local", []), ("ray", ["--set", "scoring.engine=ray", "--set",
                                                    f"scoring.address={cluster}"])):
        out, emb = tmp_path / f"{engine}.csv", tmp_path / f"{engine}.npz"
        args = [a if a != "X" else str(emb) for a in argv]
        assert main([*args, "--out", str(out), *extra]) == 0
        err = capsys.readouterr().err
        assert "skipped" in err and "broken.png" in err
        csvs.append(out.read_text())
        npzs.append(np.load(emb))
    assert csvs[0] == csvs[1] and csvs[0].count("\n") == 8  # header + 7 readable images
    assert (npzs[0]["paths"] == npzs[1]["paths"]).all()
    assert np.array_equal(npzs[0]["embeddings"], npzs[1]["embeddings"])


def test_an_error_in_a_worker_reaches_the_caller_as_itself(cluster, pool, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    images = sorted(pool.glob("*.png"))[:2]
    cfg = load_config(None, ["imgsz=64", "device=cpu"])
    with pytest.raises(ModelError) as local:
        score_images(bad, images, cfg, progress=False)
    with pytest.raises(ModelError) as on_ray:
        score_images(bad, images, cfg.replace(scoring={"engine": "ray", "address": cluster}), progress=False)
    assert str(on_ray.value) == str(local.value) and "cannot load weights" in str(local.value)


def failing_adapter(cfg):
    """An adapter with a bug: every predict raises a plain RuntimeError."""
    return Failing()


class Failing:
    def predict(self, *args, **kwargs):
        raise RuntimeError("a bug in the adapter")


def test_a_bug_in_a_worker_is_one_model_error_quoting_it(cluster, weights, pool):
    cfg = load_config(None, ["imgsz=64", "device=cpu", "scoring.engine=ray", f"scoring.address={cluster}"])
    with pytest.raises(ModelError) as err:
        score_images(weights, sorted(pool.glob("*.png"))[:2], cfg, progress=False, worker_adapter=failing_adapter)
    assert str(err.value) == "scoring on Ray failed (RuntimeError: a bug in the adapter)"


def test_more_workers_than_the_cluster_can_hold_is_one_line_before_the_cycle_writes(cluster, pool, tmp_path,
                                                                                     monkeypatch, capsys):
    monkeypatch.setenv("DETAL_FAKE_ADAPTER", "1")
    project = make_ray_project(tmp_path, pool, "proj")
    before = snapshot(tmp_path)
    argv = ["cycle", str(project), *(a for s in ray_set(cluster, 3) for a in ("--set", s))]
    assert main(argv) == 1  # 3 actors of at least one CPU each on a cluster of 2 CPUs would wait forever
    assert capsys.readouterr().err == ("detal: error: scoring.workers: 3 workers, but the Ray cluster has 2 CPUs "
                                       "and no GPU\n")
    assert snapshot(tmp_path) == before


def test_detal_cycle_on_ray_with_the_fake_adapter_equals_the_local_cycle(cluster, pool, tmp_path, monkeypatch,
                                                                         capsys):
    # The CLI path end to end; the workers build the fake adapter because the driver's environment asks for
    # it (DETAL_FAKE_ADAPTER=1), as the local engine's adapter is.
    monkeypatch.setenv("DETAL_FAKE_ADAPTER", "1")
    local = make_ray_project(tmp_path, pool, "local")
    on_ray = make_ray_project(tmp_path, pool, "ray")
    assert main(["cycle", str(local)]) == 0
    assert main(["cycle", str(on_ray), *(a for s in ray_set(cluster, 2) for a in ("--set", s))]) == 0
    out = capsys.readouterr().out
    assert "select: 3 images" in out
    assert outcome(on_ray) == outcome(local)
