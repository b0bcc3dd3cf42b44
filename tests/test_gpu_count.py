"""Asking for more GPUs than exist is one clear line before anything starts."""

import pytest
from projectkit import make_project, snapshot, write_returned

from detal.errors import ConfigError
from detal.ultra.setup import check_gpus


@pytest.mark.parametrize("device", ["auto", "cpu", "mps", "0", "0,1", "cuda:1"])
def test_devices_present_pass(monkeypatch, device):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_gpus(device)


@pytest.mark.parametrize(("device", "missing"), [("0,1", "1"), ("2", "2"), ("0,2,3", "2, 3")])
def test_missing_gpus_refused(monkeypatch, device, missing):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError) as err:
        check_gpus(device)
    msg = str(err.value)
    assert "\n" not in msg
    assert f"asks for GPU {missing} but this machine has 1 GPU(s)" in msg


def test_bad_device_refused():
    with pytest.raises(ConfigError, match="not auto, cpu, mps or GPU indices"):
        check_gpus("gpu0")


def test_gpu_named_twice_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with pytest.raises(ConfigError, match=r"device: '0,1,1' names GPU 1 more than once"):
        check_gpus("0,1,1")


def test_several_gpus_without_cloudpickle_refused(monkeypatch):
    """Ultralytics' DDP launch would pip-install cloudpickle: refused before, in one line."""
    import torch

    from detal.ultra import setup

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_gpus("0,1")
    monkeypatch.setattr(setup, "_has_cloudpickle", lambda: False)
    check_gpus("1")  # one GPU: no DDP, no cloudpickle needed
    with pytest.raises(ConfigError) as err:
        check_gpus("0,1")
    assert str(err.value) == ("device: '0,1' trains on 2 GPUs through Ultralytics' DDP, which needs "
                              "cloudpickle>=3.1.1 (pip install 'cloudpickle>=3.1.1'; detal never installs packages)")


def test_the_adapter_refuses_before_anything(monkeypatch):
    import torch

    from detal.config import Config
    from detal.ultra.adapter import UltralyticsAdapter

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match="this machine has 0 GPU"):
        UltralyticsAdapter(Config(model="yolov8n.yaml", imgsz=64, device="0,1"))


def test_train_refuses_before_writing(monkeypatch, tmp_path):
    import torch

    from detal.config import Config
    from detal.ultra.adapter import UltralyticsAdapter

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    adapter = UltralyticsAdapter(Config(model="yolov8n.yaml", imgsz=64, device="0,1"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a GPU gone since
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="this machine has 1 GPU"):
        adapter.train([(tmp_path / "a.png", tmp_path / "a.txt")], [], ["a"], out, epochs=1)
    assert not out.exists()


def test_detal_cycle_refuses_before_the_cycle_starts(monkeypatch, tmp_path, capsys):
    """``detal cycle --set device=0,1`` on a one-GPU machine: one line, exit 1, the project untouched."""
    import torch

    from detal.adapter import FAKE_ADAPTER_ENV
    from detal.cli import main
    from detal.project import import_labels

    monkeypatch.delenv(FAKE_ADAPTER_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    project = make_project(tmp_path, n=20)
    import_labels(project, write_returned(tmp_path / "r0", project, 0))
    before = snapshot(project)
    capsys.readouterr()
    code = main(["cycle", str(project), "--set", "device=0,1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        "detal: error: device: '0,1' asks for GPU 1 but this machine has 1 GPU(s)"
    ]
    assert snapshot(project) == before
