"""Typed configuration loaded from YAML.

A config file holds any subset of the keys of :class:`Config`; the rest keep
their defaults (documented, key by key, in ``detal/defaults.yaml``, shipped
with the package and printed by ``detal config --defaults``). Any key
can be overridden from the CLI with ``--set key=value``; the value is parsed as
a YAML value (:func:`detal.safeyaml.load_yaml`, never ``eval``) and then checked against the
key's type.

Every problem raises :class:`~detal.errors.ConfigError` naming the file, the
key and the value: unknown keys get a did-you-mean hint, fractions are range
checked, and choices are checked against their allowed values.

Every number is checked when the config is read, not when it is first used:
floats must be finite (no ``.nan``/``.inf``, also inside ``train_args``), and
every int key must fit 32 bits (``seed``: ``[0, 2**32 - 1]``, what numpy's
legacy seeding takes). Config files are parsed by :func:`detal.safeyaml.load_yaml`:
YAML aliases are refused (a 400-byte alias bomb would otherwise expand to a
billion leaves), and so are files over 1 MiB.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detal.engines import ENGINES
from detal.errors import ConfigError, did_you_mean, unknown
from detal.files import read_small_text
from detal.safeyaml import MAX_YAML_BYTES, load_yaml
from detal.selection import STRATEGIES
from detal.self_training import AMBIGUOUS_RULES
from detal.uncertainty import AGGREGATIONS, CLASS_WEIGHTINGS, measure_weights

__all__ = [
    "DEFAULTS_PATH", "DEFAULT_CONFIG_PATH", "SCORING", "SELF_TRAINING", "Config", "defaults_text", "load_config",
    "parse_override", "warm_starts",
]

DEFAULTS_PATH = Path(__file__).resolve().parent / "defaults.yaml"
"""The documented defaults, package data: every key of :class:`Config` with its default and meaning.

The source of truth for that text; the values themselves are :class:`Config`'s
field defaults, and a test keeps the two equal.
"""

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
"""``configs/default.yaml``: a byte-for-byte copy of :data:`DEFAULTS_PATH` for readers of a
source checkout (absent from an installed wheel; a test keeps the two identical)."""


# The self_training block: every key with its default (configs/default.yaml documents each). A config
# gives any subset; the rest keep these. `--set self_training.KEY=VALUE` sets one key.
SELF_TRAINING: dict[str, Any] = {
    "enabled": True,
    "teacher": "previous",
    "t_high": None,
    "t_low": 0.1,
    "t_fallback": 0.8,
    "t_min": 0.5,
    "t_max": 0.9,
    "precision": 0.95,
    "min_boxes": 20,
    "max_pseudo_images": 2000,
    "real_share": 0.8,
    "ambiguous": "mask",
}
_TEACHERS = ("supervised", "previous")

# What correcting a batch costs (detal/effort.py; docs/method.md, "What a batch costs"): seconds per
# action and the IoU rules of the matcher. A config gives any subset; the rest keep these.
EFFORT_SECONDS: dict[str, float] = {
    "verify": 1.6, "adjust": 4.0, "relabel": 3.0, "delete": 1.5, "draw": 7.0, "per_image": 3.0,
}
EFFORT_IOU: dict[str, float] = {"match": 0.5, "verify": 0.7}

# Where predictions are computed (detal/engines): this process, or a Ray cluster. A config gives any
# subset; the rest keep these. `--set scoring.KEY=VALUE` sets one key.
SCORING: dict[str, Any] = {"engine": "local", "address": None, "workers": None}


@dataclass
class Config:
    """Every setting of detal. See ``detal/defaults.yaml`` for each key's meaning."""

    # model and training
    model: str = "yolov5s.yaml"
    weights: str | None = None
    imgsz: int = 640
    device: str = "auto"
    batch: int = 16
    workers: int = 2
    epochs_per_cycle: int = 20
    first_cycle_epochs: int | None = None
    min_steps_per_cycle: int | None = None
    warm_start: bool | str = "auto"
    train_args: dict = field(default_factory=dict)
    # schedule
    initial_fraction: float = 0.02
    subset_fraction: float = 0.20
    batch_fraction: float = 0.10
    uncertain_share: float = 0.5
    strategy: str = "hybrid"
    candidate_factor: float = 3.0
    hybrid_max_labeled: int | None = 2000
    max_labeled_fraction: float = 0.42
    # scoring
    measure: str | dict = "multilabel_entropy"
    normalize_entropy: bool = True
    aggregate: str = "max"
    score_conf: float = 0.1
    empty_image_score: float = 0.0
    iou: float = 0.7
    predict_batch: int = 32
    decode_workers: int = 0
    class_weighting: str = "none"
    difficulty_beta: float = 1.0
    # pre-labels
    prelabel_conf: float = 0.25
    # where scoring runs (detal/engines)
    scoring: dict = field(default_factory=lambda: dict(SCORING))
    # self-training (docs/method.md, "Self-training")
    self_training: dict = field(default_factory=lambda: dict(SELF_TRAINING))
    # what a batch costs
    effort_seconds: dict = field(default_factory=lambda: dict(EFFORT_SECONDS))
    effort_iou: dict = field(default_factory=lambda: dict(EFFORT_IOU))
    # data and reproducibility
    data: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _validate(self, source="config")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied and validated."""
        return from_mapping({**self.to_dict(), **changes}, source="config")


_FRACTIONS = ("initial_fraction", "subset_fraction", "batch_fraction", "max_labeled_fraction")
_UNIT_INTERVAL = ("uncertain_share", "score_conf", "prelabel_conf", "iou")
_POSITIVE_INTS = ("imgsz", "batch", "epochs_per_cycle", "predict_batch")
_CHOICES = {"aggregate": AGGREGATIONS, "strategy": STRATEGIES, "class_weighting": CLASS_WEIGHTINGS}

# Every int key must lie in _INT_RANGE unless listed in _INT_RANGES: Ultralytics,
# torch and numpy store these in C integers, where a huge value is a traceback.
_INT_RANGE = (-(2**31), 2**31 - 1)
_INT_RANGES = {
    "seed": (0, 2**32 - 1),  # numpy's legacy seeding (used by Ultralytics) takes 32 bits
    "imgsz": (-(2**31), 16384),  # a larger canvas only fails later, out of memory
}


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(Config)}


def _type_ok(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Check (and lightly coerce) ``value`` against a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return True, None
        for option in options:
            if option is type(None):
                continue
            ok, coerced = _type_ok(value, option)
            if ok:
                return True, coerced
        return False, value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        if isinstance(value, bool):
            return False, value
        return isinstance(value, (int, float)), float(value) if isinstance(value, (int, float)) else value
    if annotation is str:
        return isinstance(value, str), value
    if annotation is dict:
        return isinstance(value, dict), value
    return False, value


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else a.__name__ for a in typing.get_args(annotation))
    return annotation.__name__


def _show(value: Any) -> str:
    """``repr`` of a value, short even for an integer of thousands of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value))) if value.bit_length() < 14000 else 'thousands of'} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_numbers(value: Any, where: str, source: str) -> None:
    """Every number inside ``value`` (recursively) is finite and fits a 64-bit integer."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {where} must be a finite number, got {value!r}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise ConfigError(f"{source}: {where} is out of range, got {_show(value)}")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_numbers(v, f"{where}.{k}", source)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_numbers(v, f"{where}[{i}]", source)


def _check_ranges_of(name: str, value: Any, source: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {name} must be a finite number, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        lo, hi = _INT_RANGES.get(name, _INT_RANGE)
        if value > hi:
            raise ConfigError(f"{source}: {name} must be at most {hi}, got {_show(value)}")
        if value < lo:
            raise ConfigError(f"{source}: {name} must be at least {lo}, got {_show(value)}")


def _check_ranges(cfg: Config, source: str) -> None:
    """Every numeric key is finite, and every int key within its range."""
    for name in _fields():
        _check_ranges_of(name, getattr(cfg, name), source)


def _validate(cfg: Config, source: str) -> None:
    hints = typing.get_type_hints(Config)
    for name in _fields():
        value = getattr(cfg, name)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            if hints[name] is float:  # before float() overflows on it
                raise ConfigError(f"{source}: {name} must be a finite number, got {_show(value)}")
            _check_ranges_of(name, value, source)
        _check_numbers(value, name, source)
    for name in _fields():
        value = getattr(cfg, name)
        ok, coerced = _type_ok(value, hints[name])
        if not ok:
            raise ConfigError(
                f"{source}: {name} must be {_type_name(hints[name])}, got {value!r}"
            )
        object.__setattr__(cfg, name, coerced)
    _check_ranges(cfg, source)
    for name in _FRACTIONS:
        value = getattr(cfg, name)
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{source}: {name} must lie in (0, 1], got {value!r}")
    for name in _UNIT_INTERVAL:
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{source}: {name} must lie in [0, 1], got {value!r}")
    for name in _POSITIVE_INTS:
        value = getattr(cfg, name)
        if value < 1:
            raise ConfigError(f"{source}: {name} must be a positive integer, got {value!r}")
    if cfg.first_cycle_epochs is not None and cfg.first_cycle_epochs < 1:
        raise ConfigError(f"{source}: first_cycle_epochs must be a positive integer or null, got {cfg.first_cycle_epochs!r}")
    if cfg.min_steps_per_cycle is not None and cfg.min_steps_per_cycle < 1:
        raise ConfigError(f"{source}: min_steps_per_cycle must be a positive integer or null, got {cfg.min_steps_per_cycle!r}")
    if not (math.isfinite(cfg.candidate_factor) and cfg.candidate_factor >= 1.0):
        raise ConfigError(f"{source}: candidate_factor must be a finite number >= 1, got {cfg.candidate_factor!r}")
    if cfg.hybrid_max_labeled is not None and cfg.hybrid_max_labeled < 1:
        raise ConfigError(
            f"{source}: hybrid_max_labeled must be a positive integer or null, got {cfg.hybrid_max_labeled!r}"
        )
    if cfg.workers < 0:
        raise ConfigError(f"{source}: workers must be >= 0, got {cfg.workers!r}")
    if not 0 <= cfg.decode_workers <= 256:
        raise ConfigError(f"{source}: decode_workers must lie in [0, 256], got {_show(cfg.decode_workers)}")
    try:
        measure_weights(cfg.measure)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if not math.isfinite(cfg.difficulty_beta) or cfg.difficulty_beta < 0:
        raise ConfigError(f"{source}: difficulty_beta must be a finite number >= 0, got {cfg.difficulty_beta!r}")
    for name, choices in _CHOICES.items():
        value = getattr(cfg, name)
        if value not in choices:
            raise ConfigError(
                f"{source}: {name} must be one of {', '.join(choices)}, got {value!r}{did_you_mean(value, choices)}"
            )
    if cfg.initial_fraction > cfg.max_labeled_fraction:
        raise ConfigError(
            f"{source}: initial_fraction ({cfg.initial_fraction}) exceeds max_labeled_fraction ({cfg.max_labeled_fraction})"
        )
    if not cfg.model.strip():
        raise ConfigError(f"{source}: model must name a YAML (e.g. yolov8n.yaml) or a .pt file")
    if cfg.warm_start not in (True, False, "auto"):
        raise ConfigError(f"{source}: warm_start must be true, false or auto, got {_show(cfg.warm_start)}")
    object.__setattr__(cfg, "scoring", _scoring(cfg.scoring, source))
    object.__setattr__(cfg, "self_training", _self_training(cfg.self_training, source))
    object.__setattr__(cfg, "effort_seconds", _number_block("effort_seconds", cfg.effort_seconds, EFFORT_SECONDS,
                                                            source, 0.0, 3600.0))
    object.__setattr__(cfg, "effort_iou", _number_block("effort_iou", cfg.effort_iou, EFFORT_IOU, source, 0.0, 1.0))
    iou = cfg.effort_iou
    if not 0.0 < iou["match"] <= iou["verify"]:
        raise ConfigError(f"{source}: effort_iou needs 0 < match <= verify, got match={iou['match']:g} "
                          f"verify={iou['verify']:g}")


def _number_block(name: str, block: Mapping[str, Any], defaults: Mapping[str, float], source: str,
                  lo: float, hi: float) -> dict[str, float]:
    """A block of numbers (``effort_seconds``, ``effort_iou``) with its defaults filled in, each in [lo, hi]."""
    for key in block:
        if key not in defaults:
            raise ConfigError(f"{source}: {name}: {unknown('key', key, defaults)}")
    out = {**defaults, **block}
    for key, v in out.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) or not lo <= v <= hi:
            raise ConfigError(f"{source}: {name}.{key} must be a number in [{lo:g}, {hi:g}], got {_show(v)}")
        out[key] = float(v)
    return out


def _scoring(block: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The scoring block with its defaults filled in: engine, the Ray address, the worker count."""
    where = f"{source}: scoring"
    for key in block:
        if key not in SCORING:
            raise ConfigError(f"{where}: {unknown('key', key, SCORING)}")
    out = {**SCORING, **block}
    engine = out["engine"]
    if engine not in ENGINES:
        raise ConfigError(f"{where}.engine must be one of {', '.join(ENGINES)}, got {_show(engine)}"
                          f"{did_you_mean(engine, ENGINES) if isinstance(engine, str) else ''}")
    address = out["address"]
    if address is not None and (not isinstance(address, str) or not _address_ok(address)):
        raise ConfigError(f"{where}.address must be null (a local Ray instance), auto, HOST:PORT or "
                          f"ray://HOST:PORT, got {_show(address)}")
    workers = out["workers"]
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 1 <= workers <= 4096):
        raise ConfigError(f"{where}.workers must be an integer in [1, 4096] or null (one per GPU), "
                          f"got {_show(workers)}")
    return out


def _address_ok(address: str) -> bool:
    """``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` with a port in [1, 65535]."""
    if address == "auto":
        return True
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    return bool(sep and host.strip() and host == host.strip() and port.isdigit() and 1 <= int(port) <= 65535)


def _self_training(block: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The self_training block with its defaults filled in, every key checked."""
    where = f"{source}: self_training"
    for key in block:
        if key not in SELF_TRAINING:
            raise ConfigError(f"{where}: {unknown('key', key, SELF_TRAINING)}")
    out = {**SELF_TRAINING, **block}

    def number(key: str, lo: float, hi: float, integer: bool = False, nullable: bool = False) -> None:
        v = out[key]
        if v is None and nullable:
            return
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or not math.isfinite(float(v)) or not lo <= v <= hi:
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{where}.{key} must be {kind} in [{lo:g}, {hi:g}]{' or null' if nullable else ''}, "
                              f"got {_show(v)}")
        if not integer:
            out[key] = float(v)

    if not isinstance(out["enabled"], bool):
        raise ConfigError(f"{where}.enabled must be true or false, got {_show(out['enabled'])}")
    if out["ambiguous"] not in AMBIGUOUS_RULES:
        raise ConfigError(f"{where}.ambiguous must be one of {', '.join(AMBIGUOUS_RULES)}, got "
                          f"{_show(out['ambiguous'])}{did_you_mean(out['ambiguous'], AMBIGUOUS_RULES)}")
    if out["teacher"] not in _TEACHERS:
        raise ConfigError(f"{where}.teacher must be one of {', '.join(_TEACHERS)}, got {_show(out['teacher'])}"
                          f"{did_you_mean(out['teacher'], _TEACHERS)}")
    for key in ("t_low", "t_fallback", "t_min", "t_max", "precision"):
        number(key, 0.0, 1.0)
    number("t_high", 0.0, 1.0, nullable=True)
    number("min_boxes", 1, 2**31 - 1, integer=True)
    number("max_pseudo_images", 0, 2**31 - 1, integer=True, nullable=True)
    number("real_share", 0.0, 0.99)
    if out["t_min"] > out["t_max"]:
        raise ConfigError(f"{where}: t_min ({out['t_min']}) exceeds t_max ({out['t_max']})")
    lowest = out["t_high"] if out["t_high"] is not None else min(out["t_min"], out["t_fallback"])
    if out["t_low"] > lowest:
        raise ConfigError(f"{where}: t_low ({out['t_low']}) must not exceed the high threshold ({lowest})")
    return out


def from_mapping(data: Mapping[str, Any], source: str = "config") -> Config:
    """Build a :class:`Config` from a mapping, rejecting unknown keys."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: top level must be a mapping of key: value, got {type(data).__name__}")
    known = _fields()
    for key in data:
        if key not in known:
            raise ConfigError(f"{source}: {unknown('key', key, _fields(), list_choices=False)}")
    cfg = Config.__new__(Config)
    for name, f in known.items():
        if name in data:
            value = data[name]
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = f.default
        object.__setattr__(cfg, name, value)
    _validate(cfg, source)
    return cfg


_BLOCK_PREFIXES = ("scoring.", "self_training.", "effort_seconds.", "effort_iou.")


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` override; the value is a YAML scalar, never eval'd."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    block = key.startswith(_BLOCK_PREFIXES)  # one key of a block: checked with the block
    if not block and key not in _fields():
        raise ConfigError(f"--set: {unknown('key', key, _fields(), list_choices=False)}")
    try:
        value = load_yaml(raw, f"--set {key}") if raw.strip() else ""
    except ConfigError as exc:  # not YAML, an alias, nested too deeply, a 5000-digit integer, yes
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        reason = str(exc).removeprefix(f"--set {key}: ").removeprefix("line 1: ")
        raise ConfigError(f"--set {key}: cannot parse value {shown!r} ({reason})") from None
    if block:
        return key, value
    hints = typing.get_type_hints(Config)
    # A bare word like `yolov8n.yaml` or `cpu` parses as a string already; numbers
    # that should be strings (device=0) are turned back into text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ok, _ = _type_ok(value, hints[key])
        if not ok and _type_ok(raw.strip(), hints[key])[0]:
            value = raw.strip()
    return key, value


def _read_yaml_file(p: Path) -> Any:
    """The YAML of a config file: no aliases, at most 1 MiB (see :mod:`detal.safeyaml`)."""
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, expected a YAML config file")
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    text = read_small_text(p, ConfigError, "config file", max_bytes=MAX_YAML_BYTES)
    return load_yaml(text, str(p))


def defaults_text() -> str:
    """The commented defaults file shipped with the package (:data:`DEFAULTS_PATH`), as text."""
    try:
        return DEFAULTS_PATH.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{DEFAULTS_PATH}: cannot read the packaged defaults ({exc.strerror})") from None


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load ``path`` (or the defaults) and apply ``key=value`` overrides in order."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        loaded = _read_yaml_file(p)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping of key: value, got {type(loaded).__name__}")
        for key in loaded:
            if key not in _fields():
                raise ConfigError(f"{p}: {unknown('key', key, _fields(), list_choices=False)}")
        data.update(loaded)
    for text in overrides:
        key, value = parse_override(text)
        if key.startswith(_BLOCK_PREFIXES):
            name, sub = key.split(".", 1)
            block = data.get(name)
            data[name] = {**(block if isinstance(block, dict) else {}), sub: value}
        else:
            data[key] = value
        source = f"{source} + --set" if "--set" not in source else source
    return from_mapping(data, source=source)


def warm_starts(cfg: Config) -> bool:
    """Whether a cycle starts from the previous cycle's weights.

    ``auto`` (the default): not when ``weights`` are given (every cycle then
    retrains from them, the benchmarked protocol), yes when training from the
    model YAML (from scratch every cycle would waste the earlier training).
    """
    if cfg.warm_start == "auto":
        return cfg.weights is None
    return bool(cfg.warm_start)


def cycle_epochs(cfg: Config, cycle: int, n_labeled: int) -> int:
    """Epochs for ``cycle``: first_cycle_epochs or epochs_per_cycle, raised to min_steps_per_cycle."""
    epochs = cfg.epochs_per_cycle
    if cycle == 0 and cfg.first_cycle_epochs is not None:
        epochs = cfg.first_cycle_epochs
    steps = cfg.min_steps_per_cycle
    if steps and n_labeled > 0:
        steps_per_epoch = math.ceil(n_labeled / cfg.batch)
        epochs = max(epochs, math.ceil(steps / steps_per_epoch))
    return epochs
