"""Asking for more GPUs than exist is one clear line before training starts."""

import pytest

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


def test_train_refuses_before_writing(monkeypatch, tmp_path):
    import torch

    from detal.config import Config
    from detal.ultra.adapter import UltralyticsAdapter

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    adapter = UltralyticsAdapter(Config(model="yolov8n.yaml", imgsz=64, device="0,1"))
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="this machine has 0 GPU"):
        adapter.train([(tmp_path / "a.png", tmp_path / "a.txt")], [], ["a"], out, epochs=1)
    assert not out.exists()
