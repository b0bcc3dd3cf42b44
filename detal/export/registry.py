"""The export formats: one entry per format, and everything that names a format reads it here.

An :class:`ExportFormat` says where the format's output lies in an export
folder, how it is written, and, for the formats vendors send back, how it is
read. :func:`detal.export.export_predictions`, :func:`detal.export.read_returned`,
the CLI's ``--format`` choices and help, and :func:`parse_formats` all come
from :data:`EXPORT_FORMATS`.

Adding a format is one module under ``detal/export/`` and one entry below.
The module defines, with these signatures::

    write(target: Path, images: Sequence[ImageLabels], names: Sequence[str],
          options: WriteOptions) -> None                 # creates `target`
    read(path: Path, names: Sequence[str], options: ReadOptions) -> ReturnedLabels
                                                         # if vendors send it back
    check(options: WriteOptions) -> None                 # optional: refuse bad options
                                                         # before anything is written

The options are :class:`~detal.export.options.WriteOptions` and
:class:`~detal.export.options.ReadOptions`. Writers read the canonical boxes of
:class:`~detal.export.common.ImageLabels`
(so every format agrees with the YOLO text to the last digit), readers give
canonical YOLO text keyed by image (see :class:`~detal.export.common.ReturnedLabels`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from detal.errors import ConfigError, unknown
from detal.export import coco, cvat, cvat_xml, labelstudio, yolo
from detal.export.common import ImageLabels, ReturnedLabels
from detal.export.options import ReadOptions, WriteOptions

__all__ = [
    "ARTIFACTS",
    "EXPORT_FORMATS",
    "FORMATS",
    "IMPORT_FORMATS",
    "ExportFormat",
    "format_list",
    "parse_formats",
]

Writer = Callable[[Path, Sequence[ImageLabels], Sequence[str], WriteOptions], None]
Reader = Callable[[Path, Sequence[str], ReadOptions], ReturnedLabels]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, where its output lies, and how it is written and read back."""

    name: str
    """As typed after ``--format``."""
    artifact: str
    """The file or folder the format owns directly under the export folder (replaced as a whole)."""
    result: str
    """The path :func:`~detal.export.export_predictions` returns, inside :attr:`artifact` (``""``: itself)."""
    summary: str
    """What it is, in a few words, for the CLI's help."""
    write: Writer
    read: Reader | None = None
    """Reads what a vendor sends back; ``None``: export only, ``detal import`` does not take it."""
    check: Callable[[WriteOptions], None] | None = None
    """Refuses bad options (a :class:`~detal.errors.DataError`) before anything is written."""

    def result_path(self, root: Path) -> Path:
        return root / self.artifact / self.result


EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("yolo", "yolo", "", "Ultralytics layout", yolo.write, yolo.read),
        ExportFormat("cvat-yolo", "cvat-yolo.zip", "", "CVAT YOLO 1.1 zip", cvat.write, cvat.read),
        ExportFormat("coco", "coco", coco.COCO_JSON, "instances JSON", coco.write, coco.read),
        ExportFormat("cvat-xml", "cvat-xml", cvat_xml.CVAT_XML, "CVAT for images 1.1 XML", cvat_xml.write,
                     cvat_xml.read),
        ExportFormat("label-studio", "label-studio", "tasks.json", "tasks with predictions + config",
                     labelstudio.write, check=labelstudio.check),
    )
}
"""Every export format by name, in the order the CLI lists them."""

FORMATS = tuple(EXPORT_FORMATS)
"""Every export format's name."""

IMPORT_FORMATS = tuple(name for name, f in EXPORT_FORMATS.items() if f.read is not None)
"""The formats :func:`~detal.export.read_returned` reads (what vendors send back)."""

ARTIFACTS = {name: f.artifact for name, f in EXPORT_FORMATS.items()}
"""The file or folder each format owns directly under the export folder."""


def format_list(names: Sequence[str] = FORMATS, *, described: bool = False, last: str = ", ") -> str:
    """``"yolo, cvat-yolo, coco"``, or with ``described`` ``"yolo (Ultralytics layout), ..."``, for help texts."""
    items = [f"{n} ({EXPORT_FORMATS[n].summary})" if described else n for n in names]
    return ", ".join(items[:-1]) + last + items[-1] if len(items) > 1 else "".join(items)


def parse_formats(formats: str | Iterable[str], choices: Sequence[str] = FORMATS) -> list[str]:
    """``"yolo,coco"`` or ``["yolo", "coco"]`` -> checked, de-duplicated list, in given order."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for raw in items:
        name = str(raw).strip().lower()
        if not name:
            continue
        if name not in choices:
            raise ConfigError(unknown("format", name, choices))
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"no format given; expected one or more of {', '.join(choices)}")
    return out
