"""Ultralytics made offline: its first import, its settings, and the checks that would download.

``prepare_ultralytics`` imports ``ultralytics`` once with its settings outside
the home directory and every server or third-party logger switched off.
:func:`offline` swaps, while a call runs, the two checks that would fetch files
(the font check, and the AMP check, which fetches a model on CUDA) for offline
versions.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detal.image_check import allow_large_images

__all__ = ["check_gpus", "default_config_dir", "install_offline_checks", "offline", "prepare_ultralytics"]

# Settings that make Ultralytics talk to servers or third-party loggers.
_SETTINGS_OFF = (
    "sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb",
    "vscode_msg", "openvino_msg",
)


def default_config_dir() -> Path:
    """Where Ultralytics keeps its settings when the caller did not set ``YOLO_CONFIG_DIR``.

    A per-user folder under the system temp dir, never the user's home.
    """
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"detal-ultralytics-{uid}"


_import_lock = threading.Lock()
_imported = False


def prepare_ultralytics() -> None:
    """Import ultralytics once, offline, with its settings outside the home directory.

    Sets ``YOLO_CONFIG_DIR`` (to :func:`default_config_dir` unless already
    set) and ``YOLO_OFFLINE`` before the first import, then switches settings
    sync and the third-party logger integrations off. The adapter calls it
    itself; call it first when using ``ultralytics`` directly next to detal.
    It also undoes Ultralytics' patch of ``PIL.Image.open`` (see
    :func:`_restore_pil_open`); its ``torch.save`` wrapper (retries on
    failure) stays. PIL's image size limit is raised to detal's
    (:func:`detal.image_check.allow_large_images`), so Ultralytics trains on
    the large photos ``init`` accepted instead of leaving them out. Ultralytics reads the environment only on its first import, so if
    something imported it earlier, its settings folder stays where that
    import put it (sync and integrations are still switched off).
    """
    global _imported
    allow_large_images()  # PIL's limit, which Ultralytics' dataset check opens every image under
    with _import_lock:
        if _imported:
            return
        os.environ.setdefault("YOLO_CONFIG_DIR", str(default_config_dir()))
        os.environ.setdefault("YOLO_OFFLINE", "true")
        Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
        from ultralytics.utils import SETTINGS

        on = {key: False for key in _SETTINGS_OFF if SETTINGS.get(key)}
        if on:
            SETTINGS.update(on)
        _restore_pil_open()
        _imported = True


def _restore_pil_open() -> None:
    """Undo Ultralytics' process-wide patch of ``PIL.Image.open``.

    On import, Ultralytics replaces ``PIL.Image.open`` with a wrapper that, on
    an unidentifiable file, tries to pip-install ``pi-heif`` and then raises
    ``ModuleNotFoundError`` instead of ``PIL.UnidentifiedImageError``. That
    breaks code elsewhere in detal that opens images with PIL in the same
    process. Ultralytics needs it only for HEIC files, which detal does not
    list as images.
    """
    from PIL import Image
    from ultralytics.utils import patches

    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = original


def _local_font(font: str = "Arial.ttf") -> Path | None:
    """Ultralytics' font lookup without its download: the config dir or matplotlib's list."""
    from ultralytics.utils import USER_CONFIG_DIR

    candidate = USER_CONFIG_DIR / Path(font).name
    if candidate.exists():
        return candidate
    try:
        from matplotlib import font_manager

        for entry in font_manager.fontManager.ttflist:
            if Path(font).name in entry.fname and os.path.exists(entry.fname):
                return Path(entry.fname)
    except Exception:  # noqa: BLE001 - best effort: no matplotlib or no font cache means no font
        return None
    return None


def _amp_without_download(model: Any) -> bool:
    """AMP on CUDA without Ultralytics' check, which downloads a model to compare against."""
    return next(model.parameters()).device.type == "cuda"


def _offline_patches() -> list[tuple[Any, str, Any]]:
    """``(module, name, offline version)`` of every Ultralytics check that would download."""
    import ultralytics.data.utils as data_utils
    from ultralytics.engine import trainer
    from ultralytics.utils import checks

    return [
        (data_utils, "check_font", _local_font),
        (checks, "check_font", _local_font),
        (trainer, "check_amp", _amp_without_download),
    ]


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Swap Ultralytics' downloading checks for offline ones while a call runs."""
    patches = _offline_patches()
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    try:
        for mod, name, value in patches:
            setattr(mod, name, value)
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


def install_offline_checks() -> None:
    """The offline checks of :func:`offline`, for the rest of this process.

    Only for a process that exists to train once: a DDP worker that
    Ultralytics starts (:mod:`detal.ultra.ddp`), where no call of detal's
    could wrap the training.
    """
    for mod, name, value in _offline_patches():
        setattr(mod, name, value)


def check_gpus(device: str) -> None:
    """Refuse a ``device`` naming CUDA indices this machine lacks, before anything starts.

    ``device`` is the config value (``auto``, ``cpu``, ``mps``, ``0`` or ``0,1``
    for Ultralytics' DDP). Raises :class:`ConfigError` in one line; several
    GPUs also need cloudpickle, which Ultralytics' DDP launch would otherwise
    try to pip-install.
    """
    import torch

    from detal.errors import ConfigError

    dev = str(device).strip().lower().replace("cuda:", "")
    if dev in ("auto", "cpu", "mps", ""):
        return
    parts = [p.strip() for p in dev.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise ConfigError(f"device: {device!r} is not auto, cpu, mps or GPU indices like 0 or 0,1")
    twice = sorted({int(p) for p in parts if [int(q) for q in parts].count(int(p)) > 1})
    if twice:
        raise ConfigError(f"device: {device!r} names GPU {', '.join(map(str, twice))} more than once")
    have = torch.cuda.device_count()
    missing = sorted({int(p) for p in parts if int(p) >= have})
    if missing:
        raise ConfigError(
            f"device: {device!r} asks for GPU {', '.join(map(str, missing))} but this machine has {have} GPU(s)"
        )
    if len(parts) > 1 and not _has_cloudpickle():
        raise ConfigError(
            f"device: {device!r} trains on {len(parts)} GPUs through Ultralytics' DDP, which needs "
            "cloudpickle>=3.1.1 (pip install 'cloudpickle>=3.1.1'; detal never installs packages)"
        )


def _has_cloudpickle() -> bool:
    """Whether cloudpickle >= 3.1.1 is installed (Ultralytics would pip-install it at the DDP launch)."""
    from importlib import metadata

    try:
        version = metadata.version("cloudpickle")
    except metadata.PackageNotFoundError:
        return False
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")[:3]]
    return tuple(parts + [0] * (3 - len(parts))) >= (3, 1, 1)
