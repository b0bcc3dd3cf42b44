"""Training on several GPUs goes through Ultralytics' own DDP launch, with detal's settings surviving it.

No GPU here, so the launch is tested, not a multi-GPU run: the adapter
trains on the CPU with its trainer told it is the DDP parent of 2 workers
(``ddp`` and ``world_size`` set after Ultralytics' own setup), so it runs
Ultralytics' ``generate_ddp_command``. The command it would run is caught
before it starts. The tests check what the command, the script and the
pickled state hold (and that a fresh Python rebuilds detal's trainer from
them), and that the workers' output and reports are relayed: the log lands
in the adapter's log file, the closures detal registers (epoch progress)
run in the calling process, rank 0's metrics come back, a failed launch is
one error and leaves no temp file. The slow test runs the generated script
for real in a fresh process (on the CPU, without ``torch.distributed``) with
the network closed there too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detal.adapter import Metrics
from detal.config import Config
from detal.errors import ModelError
from detal.ultra import UltralyticsAdapter

cv2 = pytest.importorskip("cv2")

NAMES = ["square", "circle"]
ROOT = Path(__file__).resolve().parents[1]


def draw(root: Path, n: int) -> list[tuple[Path, Path]]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        image = np.full((32, 32, 3), 30, np.uint8)
        c, s = i % 2, int(rng.integers(8, 14))
        x, y = int(rng.integers(0, 32 - s)), int(rng.integers(0, 32 - s))
        if c == 0:
            cv2.rectangle(image, (x, y), (x + s, y + s), (0, 0, 255), -1)
        else:
            cv2.circle(image, (x + s // 2, y + s // 2), s // 2, (0, 255, 0), -1)
        img, label = root / f"im{i}.png", root / f"im{i}.txt"
        cv2.imwrite(str(img), image)
        label.write_text(f"{c} {(x + s / 2) / 32:.5f} {(y + s / 2) / 32:.5f} {s / 32:.5f} {s / 32:.5f}\n")
        items.append((img, label))
    return items


def config() -> Config:
    return Config(model="yolov8n.yaml", imgsz=32, batch=2, workers=0, device="cpu", seed=0)


@pytest.fixture
def as_ddp_parent(monkeypatch):
    """The adapter's trainer believes it launches 2 DDP workers; the launch is caught (``launches``)."""
    from detal.ultra import ddp

    real_init = ddp.DetalTrainer.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.ddp, self.world_size = True, 2

    monkeypatch.setattr(ddp.DetalTrainer, "__init__", init)
    launches: list[dict] = []
    return launches


def catch_launch(monkeypatch, launches: list, respond) -> None:
    """Replace the launch: record the command, script and state, then answer with ``respond(cmd, record)``."""
    from ultralytics.utils.patches import torch_load

    from detal.ultra import ddp

    def start(cmd):
        file = Path(cmd[-1])
        record = {"cmd": list(cmd), "script": file.read_text(), "state": torch_load(file.with_suffix(".pt")),
                  "file": file}
        launches.append(record)
        return respond(cmd, record)

    monkeypatch.setattr(ddp, "start_workers", start)


class FakeWorkers:
    """What ``subprocess.Popen`` gives the relay: a byte stream of the workers' output, then an exit code."""

    def __init__(self, chunks: list[bytes], code: int = 0, before_exit=None) -> None:
        self._chunks = list(chunks)
        self._code = code
        self._before_exit = before_exit
        self.args = ["fake"]
        self.stdout = self

    def read1(self, n: int) -> bytes:
        if not self._chunks and self._before_exit is not None:
            self._before_exit()
            self._before_exit = None
        return self._chunks.pop(0) if self._chunks else b""

    def wait(self) -> int:
        return self._code

    def poll(self) -> int:
        return self._code


def report(event: str, epoch: int, epochs: int, metrics: dict | None = None) -> bytes:
    from detal.ultra.ddp import MARK

    payload = {"event": event, "epoch": epoch, "epochs": epochs}
    if metrics is not None:
        payload["metrics"] = metrics
    return f"{MARK}{json.dumps(payload)}\n".encode()


def write_checkpoint(save_dir: Path) -> Path:
    """A loadable detection checkpoint where rank 0 would have left ``last.pt``."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n.yaml", nc=len(NAMES), verbose=False)
    model.names = dict(enumerate(NAMES))
    (save_dir / "weights").mkdir(parents=True, exist_ok=True)
    path = save_dir / "weights" / "last.pt"
    torch.save({"model": model, "train_args": {}}, path)
    return path


@pytest.fixture
def data(tmp_path) -> dict:
    items = draw(tmp_path / "pool", 6)
    return {"train": items[:4], "val": items[4:], "out": tmp_path / "cycle1"}


def train_with_log(adapter, data, tmp_path, val=()):
    epochs_seen: list[tuple[int, int]] = []
    log = tmp_path / "train.log"
    with adapter.log_to(log, on_epoch=lambda e, n: epochs_seen.append((e, n))):
        result = adapter.train(data["train"], list(val), NAMES, data["out"], epochs=2)
    return result, epochs_seen, log.read_text()


def test_the_generated_command_script_and_state(as_ddp_parent, monkeypatch, data, tmp_path):
    from ultralytics.utils import USER_CONFIG_DIR

    def respond(cmd, record):
        write_checkpoint(Path(record["state"]["args"]["save_dir"]))
        return FakeWorkers([b"worker says hello\n", report("on_train_end", 1, 2)])

    catch_launch(monkeypatch, as_ddp_parent, respond)
    result, _, _ = train_with_log(UltralyticsAdapter(config()), data, tmp_path)
    (launch,) = as_ddp_parent
    cmd, file = launch["cmd"], launch["file"]

    # Ultralytics' own launcher, 2 processes, a free local port, the script in its settings folder
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    assert cmd[5] == "--master_port" and cmd[6].isdigit() and cmd[7] == str(file)
    assert file.parent == USER_CONFIG_DIR / "DDP"
    assert Path(os.environ["YOLO_CONFIG_DIR"]).resolve() in file.resolve().parents  # not the home folder
    assert not file.exists() and not file.with_suffix(".pt").exists()  # cleaned up after the run

    # the script rebuilds the pickled trainer class (detal's) with the pickled args
    script = launch["script"]
    assert 'trainer = state["trainer"](cfg=cfg, overrides=state["args"], _callbacks=state["callbacks"])' in script
    state = launch["state"]
    from detal.ultra.ddp import DetalTrainer

    assert state["trainer"] is DetalTrainer

    # the run's paths and switches travel in the args
    args, out = state["args"], data["out"].resolve()
    assert args["project"] == str(out) and args["name"] == "train" and args["exist_ok"] is True
    assert args["save_dir"] == str(out / "train")
    assert args["data"] == str(out / "dataset" / "data.yaml") and Path(args["data"]).is_file()
    assert args["val"] is False  # a cycle trains without per-epoch validation
    assert args["plots"] is False and args["deterministic"] is True and args["epochs"] == 2
    assert args["seed"] == 0 and args["imgsz"] == 32

    # detal's closures (epoch progress) did not travel; Ultralytics' named defaults did
    callbacks = state["callbacks"]
    assert all(getattr(cb, "__name__", "") != "<lambda>" for cbs in callbacks.values() for cb in cbs)
    assert all(cb.__module__.startswith("ultralytics.") for cbs in callbacks.values() for cb in cbs)
    assert callbacks["on_train_start"] and callbacks["on_fit_epoch_end"]
    assert result.weights == out / "train" / "weights" / "last.pt"


@pytest.mark.slow
def test_a_fresh_python_rebuilds_detals_trainer_from_the_script(as_ddp_parent, monkeypatch, data, tmp_path):
    """The script's sys.path and the state, loaded in a new interpreter: detal's trainer, offline checks on."""
    kept = tmp_path / "kept"

    def respond(cmd, record):
        kept.mkdir()
        (kept / "script.py").write_text(record["script"])
        (kept / "state.pt").write_bytes(record["file"].with_suffix(".pt").read_bytes())
        write_checkpoint(Path(record["state"]["args"]["save_dir"]))
        return FakeWorkers([])

    catch_launch(monkeypatch, as_ddp_parent, respond)
    train_with_log(UltralyticsAdapter(config()), data, tmp_path)
    probe = (
        "import json, os, sys\n"
        f"exec(open({str(kept / 'script.py')!r}).read().split('from ultralytics.utils import DEFAULT_CFG_DICT')[0]"
        ".replace('if __name__ == \"__main__\":', 'if True:'))\n"
        "from ultralytics.utils.patches import torch_load\n"
        f"state = torch_load({str(kept / 'state.pt')!r}, map_location='cpu')\n"
        "import detal.ultra.ddp as ddp\n"
        "trainer = state['trainer'](overrides={**state['args'], 'save_dir': ''}, _callbacks=state['callbacks'])\n"
        "import ultralytics.data.utils as du, ultralytics.engine.trainer as tr\n"
        "print(json.dumps({'file': sys.modules[state['trainer'].__module__].__file__,\n"
        "    'font': du.check_font.__module__, 'amp': tr.check_amp.__module__,\n"
        "    'reports': sorted(e for e, cbs in trainer.callbacks.items()\n"
        "                      if any(cb.__module__ == 'detal.ultra.ddp' for cb in cbs))}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DETAL_DDP_WORKER"] = "1"
    proc = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(seen["file"]).resolve() == ROOT / "detal" / "ultra" / "ddp.py"
    assert seen["font"] == "detal.ultra.setup" and seen["amp"] == "detal.ultra.setup"
    assert seen["reports"] == ["on_fit_epoch_end", "on_train_end", "on_train_start"]


def test_the_workers_log_reports_and_metrics_are_relayed(as_ddp_parent, monkeypatch, data, tmp_path):
    per_class = [0.125, None]

    def respond(cmd, record):
        save_dir = Path(record["state"]["args"]["save_dir"])
        return FakeWorkers([
            b"Starting training for 2 epochs...\n",
            report("on_train_start", 0, 2),
            b"  1/2  loss 1.5  50%|#####     |\r  1/2  loss 1.4 100%|##########|",
            b"\n" + report("on_fit_epoch_end", 0, 2),
            b"  2/2  loss 1.3 100%|##########|\n" + report("on_fit_epoch_end", 1, 2)[:9],
            report("on_fit_epoch_end", 1, 2)[9:] + "caf\u00e9 ".encode()[:4],
            "caf\u00e9 ".encode()[4:] + b"done\n" + report("on_train_end", 1, 2,
                                                            {"map50": 0.5, "map50_95": 0.25, "per_class": per_class}),
        ], before_exit=lambda: write_checkpoint(save_dir))

    catch_launch(monkeypatch, as_ddp_parent, respond)
    result, epochs_seen, log = train_with_log(UltralyticsAdapter(config()), data, tmp_path, val=data["val"])
    assert epochs_seen == [(0, 2), (1, 2), (2, 2)]  # detal's progress closures ran here, on rank 0's reports
    assert result.metrics == Metrics(0.5, 0.25, (0.125, None))  # rank 0's final validation
    lines = log.splitlines()
    assert "Starting training for 2 epochs..." in lines
    assert "  1/2  loss 1.4 100%|##########|" in lines  # the bar's last state, one line
    assert "  2/2  loss 1.3 100%|##########|" in lines and "café done" in lines
    assert any(line.startswith("DDP: debug command") and "torch.distributed.run" in line for line in lines)
    assert "\x1e" not in log and "detal-ddp" not in log


def test_a_failed_launch_is_one_error_and_leaves_no_temp_files(as_ddp_parent, monkeypatch, data, tmp_path):
    from ultralytics.utils import USER_CONFIG_DIR

    catch_launch(monkeypatch, as_ddp_parent, lambda cmd, record: FakeWorkers([b"NCCL error\n"], code=1))
    with pytest.raises(ModelError) as err:
        train_with_log(UltralyticsAdapter(config()), data, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"training in {data['out'].resolve() / 'train'} failed")
    assert "CalledProcessError" in msg and "exit status 1" in msg
    assert not list((USER_CONFIG_DIR / "DDP").glob(f"*{as_ddp_parent[0]['file'].stem[-8:]}*"))
    assert "NCCL error" in (tmp_path / "train.log").read_text()


@pytest.mark.parametrize(("callback", "travels"), [
    (print, True),  # a builtin, named by pickle
    (json.dumps, True),
    (lambda t: None, False),
    (FakeWorkers.wait, True),  # a class's function, importable by its qualified name
    (FakeWorkers([]).wait, False),  # a bound method carries its instance
])
def test_which_callbacks_travel(callback, travels):
    from detal.ultra.ddp import travels as check

    assert check(callback) is travels


def test_closure_callbacks_travel_not(tmp_path):
    from detal.ultra.ddp import travels

    def local(trainer):
        return None

    assert travels(local) is False


@pytest.mark.slow
def test_the_generated_script_trains_in_a_fresh_process(as_ddp_parent, monkeypatch, data, tmp_path):
    """The real script, run in a new Python (one CPU process instead of torch.distributed.run).

    Its socket calls are recorded by a ``sitecustomize`` there: nothing may
    try the network (the font check would, without detal's offline checks).
    """
    from detal.ultra import ddp

    guard = tmp_path / "guard"
    guard.mkdir()
    attempts = tmp_path / "attempts.txt"
    (guard / "sitecustomize.py").write_text(
        "import os, socket\n"
        "_log = os.environ['DETAL_TEST_ATTEMPTS']\n"
        "def _blocked(*args, **kwargs):\n"
        "    with open(_log, 'a') as fh:\n"
        "        fh.write(repr(args[1:2]) + '\\n')\n"
        "    raise OSError('network blocked in this test')\n"
        "socket.socket.connect = _blocked\n"
        "socket.socket.connect_ex = _blocked\n"
        "socket.getaddrinfo = _blocked\n"
        "socket.create_connection = _blocked\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(guard))
    monkeypatch.setenv("DETAL_TEST_ATTEMPTS", str(attempts))
    real_start = ddp.start_workers
    catch_launch(monkeypatch, as_ddp_parent, lambda cmd, record: real_start([sys.executable, cmd[-1]]))
    result, epochs_seen, log = train_with_log(UltralyticsAdapter(config()), data, tmp_path, val=data["val"])
    assert not attempts.exists(), attempts.read_text()
    assert result.weights.is_file() and data["out"].resolve() / "train" in result.weights.parents
    assert epochs_seen[:3] == [(0, 2), (1, 2), (2, 2)]  # the worker's epochs, reported back
    assert result.metrics is not None and 0.0 <= result.metrics.map50 <= 1.0
    assert len(result.metrics.per_class) == len(NAMES)
    assert "DDP: debug command" in log and "epochs completed" in log  # the worker's own log, relayed
    assert "\x1e" not in log


@pytest.mark.parametrize("text", [
    # as Ultralytics' save_metrics writes it: "%.6g" values, the epoch first
    "epoch,time,train/box_loss,metrics/mAP50(B),lr/pg0\n1,3.52,1.8734,0,0.000333\n2,6.9,1.51,0.0123,1e-05\n",
    "a,b,c\n1,x,\n2,y,2.5\n",  # text, and an empty cell
    "",
])
def test_results_csv_reads_as_polars_would(tmp_path, text):
    """Where polars is not installed (a GPU machine given only pure-Python wheels), the same columns."""
    pl = pytest.importorskip("polars")
    from detal.ultra.ddp import results_columns

    path = tmp_path / "results.csv"
    path.write_text(text)
    try:
        expected = pl.read_csv(path.read_bytes(), infer_schema_length=None).to_dict(as_series=False)
    except Exception:  # noqa: BLE001 - Ultralytics' reader answers {} for whatever polars refuses
        expected = {}
    got = results_columns(path)
    assert got == expected
    assert [[type(v) for v in col] for col in got.values()] == [[type(v) for v in col] for col in expected.values()]
    assert results_columns(tmp_path / "missing.csv") == {}


def test_the_trainer_reads_results_without_polars(tmp_path, monkeypatch):
    from detal.ultra.ddp import DetalTrainer

    path = tmp_path / "results.csv"
    path.write_text("epoch,time\n1,2.5\n")
    monkeypatch.setitem(sys.modules, "polars", None)  # import polars -> ImportError
    trainer = DetalTrainer.__new__(DetalTrainer)
    trainer.csv = path
    assert trainer.read_results_csv() == {"epoch": [1], "time": [2.5]}
