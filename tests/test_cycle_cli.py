"""``detal cycle`` for cron and for people: stage lines, train.log, exit codes, ``--if-ready``.

The fast tests drive the CLI with :class:`detal.fake.FakeAdapter` (in-process,
or as a subprocess with ``DETAL_FAKE_ADAPTER=1`` and pipes, as cron runs it);
the slow one trains a real (tiny) Ultralytics model.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from projectkit import NAMES, make_images, make_project, snapshot, write_classes, write_returned

import detal
from detal.adapter import Metrics
from detal.cli import main
from detal.commands import project as project_cmd
from detal.commands.project import stage_line
from detal.config import Config
from detal.fake import FakeAdapter
from detal.project import import_labels, run_cycle
from detal.project.folder import folder_lock
from detal.ultra.log import PlainLines

REPO = Path(detal.__file__).resolve().parents[1]
S = r"\d+(\.\d)? s"  # a stage's time
STAGE_LINES = [
    rf"train: 4 images, 20 epochs, {S}",
    rf"evaluate: mAP50 0\.\d{{3}} mAP50-95 0\.\d{{3}}, {S}",
    rf"score: 8 images, {S}",
    rf"select: 4 images \(2 uncertain, 2 random\), {S}",
    rf"export: 4 pre-labels, \d+ boxes, bundle \S*proj/cycles/1/batch-1\.zip, {S}",
]


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))


def ready_project(tmp_path: Path) -> Path:
    """40 images, 4 val, the initial batch (4 images) labeled: ready for cycle 1."""
    project = make_project(tmp_path, n=40, val=4)
    import_labels(project, write_returned(tmp_path / "r0", project, 0))
    return project


def assert_stage_lines(text: str) -> None:
    lines = text.splitlines()
    assert len(lines) == len(STAGE_LINES), text
    for line, pattern in zip(lines, STAGE_LINES):
        assert re.fullmatch(pattern, line), (line, pattern)


def detal_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m detal ARGS`` with stdout and stderr on pipes (not a terminal), as cron runs it."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "detal", *args], check=False, capture_output=True, text=True,
                          env=full_env, timeout=600)


# -- output ---------------------------------------------------------------------------------
def test_a_cycle_through_pipes_prints_exactly_the_stage_lines(tmp_path):
    project = ready_project(tmp_path)
    proc = detal_cli("cycle", str(project), DETAL_FAKE_ADAPTER="1")
    assert proc.returncode == 0, proc.stderr
    assert_stage_lines(proc.stdout)
    assert proc.stderr == ""
    for text in (proc.stdout, proc.stderr):
        assert "\x1b" not in text and "\r" not in text
    log = (project / "cycles" / "1" / "train.log").read_text()
    assert "fake train: epoch 20/20, 4 images" in log and "fake evaluate: 4 images" in log


def test_in_process_output_is_plain_and_the_adapter_log_goes_to_train_log(tmp_path, capsys):
    project = ready_project(tmp_path)
    assert main(["cycle", str(project)]) == 0
    captured = capsys.readouterr()
    assert_stage_lines(captured.out)
    assert "fake" not in captured.out and captured.err == ""
    assert "\x1b" not in captured.out and "\r" not in captured.out
    log = (project / "cycles" / "1" / "train.log").read_text().splitlines()
    assert [line for line in log if line.startswith("fake train")] == [
        f"fake train: epoch {e}/20, 4 images" for e in range(1, 21)
    ]


def test_verbose_shows_the_adapter_log_live_and_still_writes_train_log(tmp_path, capsys):
    project = ready_project(tmp_path)
    assert main(["cycle", str(project), "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    epochs = [i for i, line in enumerate(lines) if line.startswith("fake train: epoch")]
    assert len(epochs) == 20
    assert max(epochs) < lines.index(next(x for x in lines if x.startswith("train: ")))  # live, before the stage line
    assert_stage_lines("\n".join(x for x in lines if not x.startswith("fake ")))
    assert "fake train: epoch 20/20" in (project / "cycles" / "1" / "train.log").read_text()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("terminal", "verbose", "bar"), [(True, False, True), (False, False, False),
                                                         (True, True, False)])
def test_an_epoch_bar_is_drawn_only_on_a_terminal(tmp_path, monkeypatch, terminal, verbose, bar):
    project = ready_project(tmp_path)
    out = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["cycle", str(project), *(["--verbose"] if verbose else [])]) == 0
    text = out.getvalue()
    assert ("\r" in text and "/20 [" in text) is bar  # tqdm: "train:  5%|...| 1/20 [..."
    # what stays on the screen: each line after its last carriage return
    shown = [line.split("\r")[-1] for line in text.split("\n")]
    shown = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line) for line in shown]
    assert_stage_lines("\n".join(x for x in shown if x and not x.startswith("fake ")))


@pytest.mark.parametrize(
    ("stage", "seconds", "figures", "line"),
    [
        ("train", 183.2, {"images": 412, "epochs": 12}, "train: 412 images, 12 epochs, 183 s"),
        ("train", 0.04, {"images": 1, "epochs": 1}, "train: 1 image, 1 epoch, 0.0 s"),
        ("evaluate", 9.4, {"metrics": Metrics(0.9134, 0.6249)}, "evaluate: mAP50 0.913 mAP50-95 0.625, 9 s"),
        ("evaluate", 0.0, {"metrics": None}, "evaluate: no validation images, 0.0 s"),
        ("score", 4.0, {"images": 200}, "score: 200 images, 4 s"),
        ("select", 0.12, {"images": 100, "uncertain": 50, "random": 50},
         "select: 100 images (50 uncertain, 50 random), 0.1 s"),
        ("export", 2.0, {"prelabels": 100, "boxes": 312, "bundle": Path("cycles/3/batch-3.zip"),
                         "exports": ["yolo"]},
         "export: 100 pre-labels, 312 boxes, bundle cycles/3/batch-3.zip, 2 s"),
        ("export", 0.3, {"prelabels": 0, "boxes": 0, "bundle": None, "exports": []},
         "export: 0 pre-labels, 0 boxes, nothing sent out, 0.3 s"),
        ("export", 1.0, {"prelabels": 1, "boxes": 1, "bundle": Path("b.zip"), "exports": ["yolo", "coco"]},
         "export: 1 pre-label, 1 box, bundle b.zip, also coco, 1 s"),
    ],
)
def test_stage_lines(stage, seconds, figures, line):
    assert stage_line(stage, seconds, **figures) == line


# -- cron: exit codes and --if-ready ------------------------------------------------------------
def _out_after(tmp_path: Path, when: str) -> tuple[Path, int, int]:
    """A project with a batch out: (project, its cycle, images out)."""
    if when == "initial batch":
        return make_project(tmp_path, n=40, val=4), 0, 4
    project = ready_project(tmp_path)
    run_cycle(project, FakeAdapter(len(NAMES), seed=2))
    import_labels(project, write_returned(tmp_path / "r1", project, 1, only=1))
    return project, 1, 3


@pytest.mark.parametrize("when", ["initial batch", "cycle 1, partly imported"])
def test_if_ready_while_a_batch_is_out_exits_0_and_changes_nothing(tmp_path, capsys, when):
    project, k, n = _out_after(tmp_path, when)
    total = 4
    capsys.readouterr()
    before = snapshot(project)
    assert main(["cycle", str(project), "--if-ready"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (f"detal: cycle: {project}: batch {k} still out ({n} of {total} images "
                            "unlabeled); nothing to do\n")
    assert captured.err == ""
    assert snapshot(project) == before

    assert main(["cycle", str(project)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"detal: cycle: {project}: batch {k} still out ({n} of {total} images "
                            "unlabeled); import its labels with detal import, or pass --force\n")
    assert snapshot(project) == before


def test_exit_statuses_through_a_real_process(tmp_path):
    project = make_project(tmp_path, n=40)
    before = snapshot(project)
    proc = detal_cli("cycle", str(project), DETAL_FAKE_ADAPTER="1")
    assert (proc.returncode, proc.stdout, proc.stderr.count("\n")) == (3, "", 1)
    proc = detal_cli("cycle", str(project), "--if-ready", DETAL_FAKE_ADAPTER="1")
    assert (proc.returncode, proc.stdout.count("\n"), proc.stderr) == (0, 1, "")
    assert proc.stdout.endswith("; nothing to do\n")
    proc = detal_cli("cycle", str(tmp_path / "nowhere"), "--if-ready", DETAL_FAKE_ADAPTER="1")
    assert proc.returncode == 1 and proc.stderr.startswith("detal: error:")  # a real error stays one
    assert snapshot(project) == before


def test_another_command_running_is_exit_4_or_nothing_to_do(tmp_path, capsys):
    project = ready_project(tmp_path)
    before = snapshot(project)
    with folder_lock(project):
        assert main(["cycle", str(project)]) == 4
        err = capsys.readouterr().err
        assert err.startswith("detal: cycle: ") and "another detal command is running" in err
        assert err.count("\n") == 1
        assert main(["cycle", str(project), "--if-ready"]) == 0
        out = capsys.readouterr().out
        assert out.endswith("another detal command is running on this project; nothing to do\n")
    assert snapshot(project) == before


def test_exit_statuses_are_documented_in_help_and_readme(capsys):
    with pytest.raises(SystemExit):
        main(["cycle", "--help"])
    text = capsys.readouterr().out
    for code, what in ((0, "the cycle ran"), (1, "an error"), (3, "a batch is still out"),
                       (4, "another detal command is running")):
        assert re.search(rf"^  {code}  .*{what}", text, re.MULTILINE), (code, text)
    assert "--if-ready" in text and "train.log" in text
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^\S.*detal cycle \S+ --if-ready >> \S+ 2>&1$", readme, re.MULTILINE)
    assert "| 3 |" in readme and "| 4 |" in readme


# -- the log stream ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("writes", "log"),
    [
        (["hello\n", "two\nlines\n"], "hello\ntwo\nlines\n"),
        (["\x1b[34m\x1b[1mtrain:\x1b[0m ok\n"], "train: ok\n"),  # colours stripped
        (["\r\x1b[K  1/2 10%", "\r\x1b[K  1/2 60%", "\r\x1b[K  1/2 100%", "\n"], "  1/2 100%\n"),  # a bar
        (["\r\x1b[Kframe", "\r\x1b[K", "next\n"], "next\n"),  # a bar cleared (leave=False)
        (["a\rb\r", "\n"], "b\n"),
        (["no newline"], "no newline\n"),  # the unfinished line is kept at the end
        (["\r\x1b[K"], ""),
        (["x  \n"], "x\n"),
    ],
)
def test_plain_lines_keep_what_a_terminal_shows(writes, log):
    fh, echo = io.StringIO(), io.StringIO()
    stream = PlainLines(fh, echo, header="")
    for w in writes:
        assert stream.write(w) == len(w)
    stream.finish()
    assert fh.getvalue() == log
    assert echo.getvalue() == log  # an echo that is not a terminal gets the same plain lines


def test_plain_lines_header_and_raw_echo_on_a_terminal():
    fh, echo = io.StringIO(), _Terminal()
    stream = PlainLines(fh, echo, header="--- train ---")
    writes = ["\r\x1b[Kbar 50%", "\r\x1b[Kbar 100%\n", "done\n"]
    for w in writes:
        stream.write(w)
    stream.finish()
    assert fh.getvalue() == "--- train ---\nbar 100%\ndone\n"
    assert echo.getvalue() == "".join(writes)  # a terminal sees the bar redraw
    assert not stream.isatty()


# -- simulate ---------------------------------------------------------------------------------
def test_simulate_writes_each_cycles_log_and_prints_only_its_lines(tmp_path, capsys):
    from detal.simulate import simulate

    ds = tmp_path / "ds"
    for split, n in (("train", 20), ("val", 4)):
        make_images(ds / "images" / split, n, start=0 if split == "train" else 100)
        (ds / "labels" / split).mkdir(parents=True)
        for p in (ds / "images" / split).glob("*.png"):
            (ds / "labels" / split / f"{p.stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (ds / "data.yaml").write_text(f"path: {ds}\ntrain: images/train\nval: images/val\nnames: [cat, dog, bird]\n")
    cfg = Config(epochs_per_cycle=2, initial_fraction=0.2, batch_fraction=0.2, max_labeled_fraction=0.6)
    out = simulate(cfg, lambda c: FakeAdapter(len(NAMES), seed=c.seed), strategies=["random"], seeds=[0],
                   out_dir=tmp_path / "sim", data=ds / "data.yaml", report=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("simulate: ")
    assert len(lines) > 2 and all(x.startswith("[random seed 0] cycle ") for x in lines[1:])
    project = out / "random" / "seed-0"
    logs = sorted(p.parent.name for p in (project / "cycles").glob("*/train.log"))
    assert logs == [str(k) for k in range(1, len(lines))]
    assert all("fake train: epoch 2/2" in (project / "cycles" / k / "train.log").read_text() for k in logs)


# -- one real run ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_cycle_logs_ultralytics_to_train_log_and_prints_only_stage_lines(tmp_path, capfd):
    """A real Ultralytics cycle, run as cron runs it (pipes): its epoch lines are in train.log only."""
    pytest.importorskip("ultralytics")
    from detal.digits import DigitsSpec, build_digits

    build_digits(tmp_path / "digits", DigitsSpec(pool=16, val=4, imgsz=64, seed=0))
    pool, labels = tmp_path / "digits" / "images" / "pool", tmp_path / "digits" / "labels" / "pool"
    some = tmp_path / "some-labels"
    some.mkdir()
    for label in sorted(labels.glob("*.txt"))[:6]:
        (some / label.name).write_text(label.read_text())
    classes = write_classes(tmp_path / "classes.txt", [str(i) for i in range(10)])
    project = tmp_path / "proj"
    settings = ["model=yolov8n.yaml", "imgsz=64", "batch=8", "workers=0", "device=cpu", "epochs_per_cycle=2",
                "initial_fraction=0.25", "batch_fraction=0.25", "subset_fraction=0.5", "score_conf=0.0"]
    init = detal_cli("init", str(project), "--images", str(pool), "--classes", str(classes),
                     "--labels", str(some), "--val-images", str(tmp_path / "digits" / "images" / "val"),
                     "--val-labels", str(tmp_path / "digits" / "labels" / "val"),
                     *[a for s in settings for a in ("--set", s)])
    assert init.returncode == 0, init.stderr

    proc = detal_cli("cycle", str(project))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [x.split(":")[0] for x in lines] == ["train", "evaluate", "score", "select", "export"], proc.stdout
    assert lines[0].startswith("train: 6 images, 2 epochs, ")
    assert proc.stderr == ""
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout

    log = (project / "cycles" / "1" / "train.log").read_text()
    epoch_lines = [x for x in log.splitlines() if re.match(r"\s+[12]/2\s", x)]  # Ultralytics' epoch bars
    assert len(epoch_lines) >= 2, log
    assert "\x1b" not in log and "\r" not in log
    assert "--- train, " in log and "--- evaluate, " in log
    for line in epoch_lines:
        assert line.strip() not in proc.stdout
    assert "Epoch" in log and "Epoch" not in proc.stdout

    # the adapter in-process: a routed evaluate says nothing on fds 1 and 2 and restores the logger
    import logging

    from detal.project.folder import pairs
    from detal.store import Store
    from detal.ultra import UltralyticsAdapter

    logger = logging.getLogger("ultralytics")
    handlers = list(logger.handlers)
    with Store.open(project / "detal.db") as store:
        val = pairs(project, store.images(status="val"))
    adapter = UltralyticsAdapter(Config(model="yolov8n.yaml", imgsz=64, batch=8, workers=0, device="cpu"))
    weights = next((project / "cycles" / "1" / "train").rglob("last.pt"))
    capfd.readouterr()
    with adapter.log_to(tmp_path / "eval.log"):
        metrics = adapter.evaluate(weights, val, [str(i) for i in range(10)], tmp_path / "eval")
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert 0.0 <= metrics.map50_95 <= metrics.map50 <= 1.0
    assert re.search(r"^\s+all\s+4\s+\d+\s", (tmp_path / "eval.log").read_text(), re.MULTILINE)
    assert logger.handlers == handlers and not any(isinstance(h.stream, PlainLines) for h in handlers)
