"""The weights that ship with detal: the recorded checksum, and they load offline as a detector."""

from __future__ import annotations

import pytest

from detal.weights import GLYPHS, GLYPHS_SHA256, sha256_of


def test_the_shipped_weights_match_their_recorded_checksum():
    assert GLYPHS.is_file()
    assert sha256_of(GLYPHS) == GLYPHS_SHA256
    text = (GLYPHS.parent / "PROVENANCE.md").read_text(encoding="utf-8")
    assert GLYPHS_SHA256 in text  # the provenance names the same file


def test_the_shipped_weights_load_as_a_26_class_yolov8n(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "true")
    torch = pytest.importorskip("torch")
    ckpt = torch.load(GLYPHS, map_location="cpu", weights_only=False)
    model = ckpt["model"]
    assert ckpt["train_args"]["model"] == "yolov8n.yaml"
    assert len(model.names) == 26 and model.names[0] == "A" and model.names[25] == "Z"
    x = torch.zeros(1, 3, 128, 128)
    with torch.no_grad():
        out = model.float().eval()(x)
    pred = out[0] if isinstance(out, (list, tuple)) else out
    assert pred.shape[1] == 4 + 26  # box + one score per letter


def test_the_shipped_weights_name_no_machine_path():
    data = GLYPHS.read_bytes()
    assert b"/work/" not in data and b"/home/" not in data and b"/root/" not in data
