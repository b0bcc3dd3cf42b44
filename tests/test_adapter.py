"""The adapter protocol and its one factory: the fake switch, the protocol's services, picklability."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from detal.adapter import FAKE_ADAPTER_ENV, ModelAdapter, make_adapter
from detal.config import Config
from detal.errors import ModelError
from detal.fake import FakeAdapter
from detal.ultra import UltralyticsAdapter


@pytest.mark.parametrize(
    ("env", "n_classes", "expected"),
    [
        (None, None, UltralyticsAdapter),
        ("0", 3, UltralyticsAdapter),
        ("1", 3, FakeAdapter),
        ("1", None, FakeAdapter),
    ],
)
def test_the_factory_honours_the_fake_switch(monkeypatch, env, n_classes, expected):
    if env is None:
        monkeypatch.delenv(FAKE_ADAPTER_ENV, raising=False)
    else:
        monkeypatch.setenv(FAKE_ADAPTER_ENV, env)
    adapter = make_adapter(Config(seed=7), n_classes=n_classes)
    assert type(adapter) is expected and isinstance(adapter, ModelAdapter)
    if expected is FakeAdapter:
        assert (adapter.n_classes, adapter.seed) == (n_classes, 7)


def test_the_factory_is_picklable_for_simulate_jobs():
    assert pickle.loads(pickle.dumps(make_adapter)) is make_adapter


def _labeled(tmp_path: Path, n: int) -> list[tuple[Path, Path]]:
    items = []
    for i in range(n):
        image, label = tmp_path / f"im{i}.png", tmp_path / f"im{i}.txt"
        image.write_bytes(b"")
        label.write_text("1 0.5 0.5 0.2 0.2\n")
        items.append((image, label))
    return items


def test_a_fake_without_a_class_count_takes_it_from_its_names_and_weights(tmp_path):
    items = _labeled(tmp_path, 4)
    trained = FakeAdapter(None).train(items, items[:1], ["a", "b", "c"], tmp_path / "t", epochs=1)
    assert FakeAdapter(None).class_names(trained.weights) == ["a", "b", "c"]
    preds = FakeAdapter(None, max_boxes=6).predict(trained.weights, [p for p, _ in items], conf=0.0).predictions
    assert {p.detections.class_probs.shape[1] for p in preds} == {3}
    assert trained.metrics is not None and len(trained.metrics.per_class) == 3


def test_a_fake_without_a_class_count_refuses_weights_it_cannot_read(tmp_path):
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not fake weights")
    assert FakeAdapter(None).class_names(weights) == []
    with pytest.raises(ModelError, match="no class count"):
        FakeAdapter(None).predict(weights, [tmp_path / "a.png"], conf=0.0)
