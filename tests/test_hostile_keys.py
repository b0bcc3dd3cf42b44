"""Hostile returns whose file names could put a label on the wrong pool image (issue 22, defects 1-3).

Every case of :data:`KEY_CASES` builds a pool whose images all have one size
(so COCO's size check cannot tell them apart), sends all of them out, writes
a return in one format, each label with a box of its own, and imports it
with ``detal import``. Then every label must be on the image it was written
for, and no other image may have one; or the import is refused with one
line naming the file, and nothing changed. Each case put a label on the
wrong image before detal's one key rule (:mod:`detal.export.keys`), or
refused a return whose every name fits one image only (the ``cvat-xml``
cases: CVAT for images XML, which main could not import at all).

The pools: ``a.png`` beside ``sub/a.png`` (defects 1 and 2), ``x.png`` beside
``x.png.jpg`` (defect 3), an image so deep that its bundle name is shortened
(defect 16), and variants (deeper, nested only, a pool folder
called ``labels``, other suffixes, the nested image first or last).
Label Studio (``detal pull``) and returns written by datumaro are tested
below the table.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from projectkit import NAMES, snapshot, write_classes

from detal.cli import main
from detal.commands import project as project_cmd
from detal.config import load_config
from detal.fake import FakeAdapter
from detal.project import init_project

SIZE = 32  # every pool image: SIZE x SIZE pixels

NEST = ["a.png", "sub/a.png", "b.png"]
DEEP = ["a.png", "sub/a.png", "sub/deeper/a.png"]
NESTED_ONLY = ["sub/a.png", "other/a.png"]
DOUBLE = ["x.png", "x.png.jpg", "y.png"]
LABELS_FOLDER = ["a.png", "labels/a.png"]  # a pool folder with the name of YOLO's label folder
OTHER_SUFFIX = ["a.png", "sub/a.jpg"]
NESTED_LAST = ["a.png", "zz/a.png"]
NESTED_FIRST = ["0/a.png", "a.png"]
SPACES = ["a b.png", "my photos/a b.png"]
ACCENTS = ["café.png", "été/café.png"]
CAMERA = ["img_1.jpg", "sub/IMG_2.JPG", "b.png"]  # names as cameras and phones write them
# defect 16: a key (sub__a) longer than a file name may be; bundles name the image by a shortened key
DEEP_LONG = f"{'d' * 200}/{'e' * 200}/{'f' * 240}.png"
LONG = ["a.png", DEEP_LONG]
ACCENTED_LONG = f"{'é' * 100}/{'ü' * 120}.png"
LONG_ACCENTS = ["a.png", ACCENTED_LONG]


def _bundle_stem(image: str) -> str:
    """The bundle's name for a pool image, without suffix: its key, shortened past 200 bytes
    to its first 187 bytes (a character cut in two dropped), ``~`` and 12 hex of the key's SHA-256."""
    key = image.rsplit(".", 1)[0].replace("/", "__").encode("utf-8")
    if len(key) <= 200:
        return key.decode("utf-8")
    return key[:187].decode("utf-8", "ignore") + "~" + hashlib.sha256(key).hexdigest()[:12]


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))


def _pool(t: Path, names: list[str]) -> Path:
    """A project over ``names`` (all SIZE x SIZE), every image out in the first batch."""
    images = t / "imgs"
    for n, name in enumerate(names):
        path = images / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = "JPEG" if name.lower().endswith(".jpg") else "PNG"
        Image.new("RGB", (SIZE, SIZE), (n * 40 % 255, 90, 30)).save(path, format=fmt)
    project = t / "p"
    init_project(project, images, write_classes(t / "classes.txt"), write_bundle=False,
                 config=load_config(None, ["initial_fraction=1", "max_labeled_fraction=1"]))
    return project


def _box(n: int) -> tuple[int, float, float, float, float]:
    """The n-th label's box: a class and a centre of its own, exact in binary (pixels of 32)."""
    return n % len(NAMES), (8 + 2 * n) / SIZE, 16 / SIZE, 4 / SIZE, 4 / SIZE


def _yolo_line(n: int) -> str:
    c, cx, cy, w, h = _box(n)
    return f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"


def _coco(names: list[str]) -> dict:
    images, annotations = [], []
    for n, name in enumerate(names):
        c, cx, cy, w, h = _box(n)
        images.append({"id": n + 1, "file_name": name, "width": SIZE, "height": SIZE})
        annotations.append({"id": n + 1, "image_id": n + 1, "category_id": c + 1,
                            "bbox": [(cx - w / 2) * SIZE, (cy - h / 2) * SIZE, w * SIZE, h * SIZE]})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": name} for i, name in enumerate(NAMES)]}


def _cvat_xml(names: list[str]) -> str:
    """CVAT for images 1.1, as CVAT writes it (2 decimals): one image per name, the n-th with box n."""
    from xml.sax.saxutils import quoteattr

    images = []
    for n, name in enumerate(names):
        c, cx, cy, w, h = _box(n)
        x1, y1, x2, y2 = ((cx - w / 2) * SIZE, (cy - h / 2) * SIZE, (cx + w / 2) * SIZE, (cy + h / 2) * SIZE)
        images.append(f'  <image id="{n}" name={quoteattr(name)} width="{SIZE}" height="{SIZE}">\n'
                      f'    <box label="{NAMES[c]}" occluded="0" source="manual" xtl="{x1:.2f}" ytl="{y1:.2f}" '
                      f'xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0">\n    </box>\n  </image>\n')
    return ('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
            + "".join(images) + "</annotations>\n")


def _cvat_lists() -> dict[str, str]:
    return {"obj.names": "".join(f"{n}\n" for n in NAMES),
            "obj.data": f"classes = {len(NAMES)}\nnames = data/obj.names\n"}


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def _folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def _write_return(t: Path, fmt: str, spelled: list[str]) -> tuple[Path, str]:
    """The return holding one label per spelled name (the n-th with box n); its path and --format."""
    labels = {f"{s}.txt": _yolo_line(n) for n, s in enumerate(spelled)}
    if fmt == "yolo":
        return _folder(t / "ret", labels), "yolo"
    if fmt == "yolo-zip":
        return _zip(t / "ret.zip", labels), "yolo"
    if fmt == "cvat":
        return _zip(t / "ret.zip", {**_cvat_lists(), **labels}), "cvat-yolo"
    if fmt == "cvat-folder":
        return _folder(t / "ret", {**_cvat_lists(), **labels}), "cvat-yolo"
    if fmt == "coco":
        path = t / "instances.json"
        path.write_text(json.dumps(_coco(spelled)), encoding="utf-8")
        return path, "coco"
    if fmt == "cvat-xml":
        path = t / "annotations.xml"
        path.write_text(_cvat_xml(spelled), encoding="utf-8")
        return path, "cvat-xml"
    if fmt == "cvat-xml-zip":  # CVAT's own export: annotations.xml at the top of a zip
        return _zip(t / "task.zip", {"annotations.xml": _cvat_xml(spelled)}), "cvat-xml"
    if fmt == "coco-folder":
        return _folder(t / "ret", {"annotations/instances_default.json": json.dumps(_coco(spelled))}), "coco"
    raise AssertionError(fmt)


def _label_boxes(project: Path) -> dict[str, list[tuple]]:
    """Pool image path (without suffix) -> the boxes of its label in the project, rounded."""
    root = project / "labels" / "images"
    out = {}
    for path in sorted(root.rglob("*.txt")):
        rel = path.relative_to(root).as_posix()[: -len(".txt")]
        out[rel] = sorted(tuple(round(float(v), 4) for v in line.split())
                          for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return out


def _expected_boxes(intended: list[str | None]) -> dict[str, list[tuple]]:
    out = {}
    for n, image in enumerate(intended):
        if image is not None:
            c, *xywh = _box(n)
            out[image.rsplit(".", 1)[0]] = [(float(c), *(round(v, 4) for v in xywh))]
    return out


LANDS = None  # expected: every label on its own image

# (id, pool, format, [(spelled name, the image it is for)], LANDS or the words of the refusal)
KEY_CASES = [
    # -- defect 1: a YOLO folder laid out like the pool ------------------------------------------
    ("yolo nested label", NEST, "yolo", [("sub/a", "sub/a.png")], LANDS),
    ("yolo root and nested label", NEST, "yolo", [("a", "a.png"), ("sub/a", "sub/a.png")], LANDS),
    ("yolo nested under labels/", NEST, "yolo", [("labels/sub/a", "sub/a.png")], LANDS),
    ("yolo nested in a wrapping folder", NEST, "yolo", [("batch/sub/a", "sub/a.png")], LANDS),
    ("yolo folder the pool has not", NEST, "yolo", [("other/a", None)],
     ["other/a.txt", "could mean image 'a.png' or 'sub/a.png'", "only its base name matches"]),
    ("yolo folder the pool has not, under labels/", NEST, "yolo", [("labels/other/a", None)],
     ["labels/other/a.txt", "could mean image 'a.png' or 'sub/a.png'"]),
    ("yolo two levels deep", DEEP, "yolo", [("sub/deeper/a", "sub/deeper/a.png")], LANDS),
    ("yolo deeper folder alone", DEEP, "yolo", [("deeper/a", None)],
     ["deeper/a.txt", "could mean image 'a.png' or 'sub/a.png' or 'sub/deeper/a.png'"]),
    ("yolo nested only, flat label", NESTED_ONLY, "yolo", [("a", None)],
     ["a.txt", "could mean image 'other/a.png' or 'sub/a.png'"]),
    ("yolo nested only, both laid out", NESTED_ONLY, "yolo",
     [("sub/a", "sub/a.png"), ("other/a", "other/a.png")], LANDS),
    ("yolo nested image of another suffix", OTHER_SUFFIX, "yolo", [("sub/a", "sub/a.jpg")], LANDS),
    ("yolo nested image last", NESTED_LAST, "yolo", [("zz/a", "zz/a.png")], LANDS),
    ("yolo nested image first", NESTED_FIRST, "yolo", [("0/a", "0/a.png"), ("a", "a.png")], LANDS),
    ("yolo spaces in names", SPACES, "yolo", [("my photos/a b", "my photos/a b.png")], LANDS),
    ("yolo accents in names", ACCENTS, "yolo", [("été/café", "été/café.png")], LANDS),
    ("yolo pool folder called labels", LABELS_FOLDER, "yolo", [("labels/a", None)],
     ["labels/a.txt", "could mean image 'a.png' or 'labels/a.png'"]),
    ("yolo pool folder called labels, under labels/", LABELS_FOLDER, "yolo",
     [("labels/labels/a", "labels/a.png")], LANDS),
    ("yolo labels named after the image file", NEST, "yolo",
     [("sub/a.png", "sub/a.png"), ("a.png", "a.png")], LANDS),
    # -- defect 1: a YOLO zip ------------------------------------------------------------------------
    ("yolo zip nested under labels/", NEST, "yolo-zip", [("labels/sub/a", "sub/a.png")], LANDS),
    ("yolo zip nested", NEST, "yolo-zip", [("sub/a", "sub/a.png")], LANDS),
    ("yolo zip in a wrapping folder", NEST, "yolo-zip", [("batch/labels/sub/a", "sub/a.png")], LANDS),
    ("yolo zip written on Windows", NEST, "yolo-zip", [("labels\\sub\\a", "sub/a.png")], LANDS),
    ("yolo zip folder the pool has not", NEST, "yolo-zip", [("labels/other/a", None)],
     ["ret.zip!labels/other/a.txt", "could mean image"]),
    ("yolo zip two levels deep", DEEP, "yolo-zip", [("labels/sub/deeper/a", "sub/deeper/a.png")], LANDS),
    ("yolo zip pool folder called labels", LABELS_FOLDER, "yolo-zip", [("labels/a", None)],
     ["ret.zip!labels/a.txt", "could mean image 'a.png' or 'labels/a.png'"]),
    ("yolo zip nested image last", NESTED_LAST, "yolo-zip", [("labels/zz/a", "zz/a.png")], LANDS),
    # -- defect 1: CVAT YOLO 1.1 -------------------------------------------------------------------
    ("cvat nested", NEST, "cvat", [("obj_train_data/sub/a", "sub/a.png")], LANDS),
    ("cvat root and nested", NEST, "cvat",
     [("obj_train_data/a", "a.png"), ("obj_train_data/sub/a", "sub/a.png")], LANDS),
    ("cvat another subset", NEST, "cvat", [("obj_Validation_data/sub/a", "sub/a.png")], LANDS),
    ("cvat in a wrapping folder", NEST, "cvat", [("task/obj_train_data/sub/a", "sub/a.png")], LANDS),
    ("cvat folder the pool has not", NEST, "cvat", [("obj_train_data/other/a", None)],
     ["obj_train_data/other/a.txt", "could mean image 'a.png' or 'sub/a.png'"]),
    ("cvat two levels deep", DEEP, "cvat", [("obj_train_data/sub/deeper/a", "sub/deeper/a.png")], LANDS),
    ("cvat nested only, flat label", NESTED_ONLY, "cvat", [("obj_train_data/a", None)],
     ["obj_train_data/a.txt", "could mean image"]),
    ("cvat nested image first", NESTED_FIRST, "cvat", [("obj_train_data/0/a", "0/a.png")], LANDS),
    ("cvat folder nested", NEST, "cvat-folder", [("obj_train_data/sub/a", "sub/a.png")], LANDS),
    ("cvat folder, folder the pool has not", NEST, "cvat-folder", [("obj_train_data/x/a", None)],
     ["obj_train_data/x/a.txt", "could mean image"]),
    # -- defect 2: COCO file_name with a folder ---------------------------------------------------
    ("coco nested file_name", NEST, "coco", [("sub/a.png", "sub/a.png")], LANDS),
    ("coco root and nested file_name", NEST, "coco", [("a.png", "a.png"), ("sub/a.png", "sub/a.png")], LANDS),
    ("coco file_name written on Windows", NEST, "coco", [("sub\\a.png", "sub/a.png")], LANDS),
    ("coco absolute file_name", NEST, "coco", [("/data/pool/sub/a.png", "sub/a.png")], LANDS),
    ("coco Windows absolute file_name", NEST, "coco", [("C:\\data\\pool\\sub\\a.png", "sub/a.png")], LANDS),
    ("coco file_name under images/", NEST, "coco", [("images/sub/a.png", "sub/a.png")], LANDS),
    ("coco file_name with ./", NEST, "coco", [("./sub/a.png", "sub/a.png")], LANDS),
    ("coco folder the pool has not", NEST, "coco", [("other/a.png", None)],
     ["instances.json", "'other/a.png' could mean image 'a.png' or 'sub/a.png'"]),
    ("coco converted to another suffix", NEST, "coco", [("sub/a.jpg", "sub/a.png")], LANDS),
    ("coco nested image of another suffix", OTHER_SUFFIX, "coco", [("sub/a.jpg", "sub/a.jpg")], LANDS),
    ("coco two levels deep", DEEP, "coco", [("sub/deeper/a.png", "sub/deeper/a.png")], LANDS),
    ("coco deeper folder alone", DEEP, "coco", [("deeper/a.png", None)],
     ["'deeper/a.png' could mean image"]),
    ("coco nested only, bare file_name", NESTED_ONLY, "coco", [("a.png", None)],
     ["'a.png' could mean image 'other/a.png' or 'sub/a.png'"]),
    ("coco nested image last", NESTED_LAST, "coco", [("zz/a.png", "zz/a.png")], LANDS),
    ("coco nested image first", NESTED_FIRST, "coco", [("0/a.png", "0/a.png")], LANDS),
    ("coco accents in names", ACCENTS, "coco", [("été/café.png", "été/café.png")], LANDS),
    ("coco folder form", NEST, "coco-folder", [("sub/a.png", "sub/a.png")], LANDS),
    # -- defect 2: CVAT for images 1.1 XML, whose image names keep their folders ---------------------
    ("cvat xml nested name", NEST, "cvat-xml", [("sub/a.png", "sub/a.png")], LANDS),
    ("cvat xml root and nested name", NEST, "cvat-xml", [("a.png", "a.png"), ("sub/a.png", "sub/a.png")], LANDS),
    ("cvat xml name written on Windows", NEST, "cvat-xml", [("sub\\a.png", "sub/a.png")], LANDS),
    ("cvat xml absolute name", NEST, "cvat-xml", [("/share/pool/sub/a.png", "sub/a.png")], LANDS),
    ("cvat xml folder the pool has not", NEST, "cvat-xml", [("other/a.png", None)],
     ["annotations.xml", "'other/a.png' could mean image 'a.png' or 'sub/a.png'"]),
    ("cvat xml two levels deep", DEEP, "cvat-xml", [("sub/deeper/a.png", "sub/deeper/a.png")], LANDS),
    ("cvat xml nested only, bare name", NESTED_ONLY, "cvat-xml", [("a.png", None)],
     ["'a.png' could mean image 'other/a.png' or 'sub/a.png'"]),
    ("cvat xml nested image first", NESTED_FIRST, "cvat-xml", [("0/a.png", "0/a.png")], LANDS),
    ("cvat xml accents in names", ACCENTS, "cvat-xml", [("été/café.png", "été/café.png")], LANDS),
    ("cvat xml zip nested name", NEST, "cvat-xml-zip", [("sub/a.png", "sub/a.png")], LANDS),
    ("cvat xml zip nested only", NESTED_ONLY, "cvat-xml-zip", [("a.png", None)], ["task.zip!annotations.xml",
                                                                                 "could mean image"]),
    ("cvat xml x.png names the file x.png", DOUBLE, "cvat-xml", [("x.png", "x.png"), ("x.png.jpg", "x.png.jpg")],
     LANDS),
    # -- defect 3: x.png beside x.png.jpg ------------------------------------------------------
    ("yolo double suffix beside plain labels", DOUBLE, "yolo", [("x.png", "x.png.jpg"), ("y", "y.png")], LANDS),
    ("yolo zip double suffix beside plain labels", DOUBLE, "yolo-zip",
     [("labels/x.png", "x.png.jpg"), ("labels/x", "x.png")], LANDS),
    ("cvat double suffix beside plain labels", DOUBLE, "cvat",
     [("obj_train_data/x.png", "x.png.jpg"), ("obj_train_data/y", "y.png")], LANDS),
    ("coco x.png names the file x.png", DOUBLE, "coco", [("x.png", "x.png")], LANDS),
    ("coco both double-suffix images", DOUBLE, "coco", [("x.png", "x.png"), ("x.png.jpg", "x.png.jpg")], LANDS),
    ("coco folder form, x.png", DOUBLE, "coco-folder", [("x.png", "x.png"), ("y.png", "y.png")], LANDS),
    # -- variants: file names as URLs, Label Studio and other tools write them -------------------------
    ("coco http URL file_name", NEST, "coco", [("http://host/pool/sub/a.png", "sub/a.png")], LANDS),
    ("coco file URL file_name", NEST, "coco", [("file:///data/pool/sub/a.png", "sub/a.png")], LANDS),
    ("coco URL percent-encoded", SPACES, "coco", [("https://h/b/my%20photos/a%20b.png", "my photos/a b.png")],
     LANDS),
    ("coco Label Studio local-files URL", NEST, "coco", [("/data/local-files/?d=pool/sub/a.png", "sub/a.png")],
     LANDS),
    ("coco Label Studio local-files URL, root image", NEST, "coco", [("/data/local-files/?d=b.png", "b.png")],
     LANDS),
    ("coco Label Studio local-files URL, percent-encoded", SPACES, "coco",
     [("/data/local-files/?d=pool/my%20photos/a%20b.png", "my photos/a b.png")], LANDS),
    ("coco Label Studio upload name", NEST, "coco", [("/data/upload/3/1a2b3c4d-b.png", None)],
     ["label for an image the project does not have", "1a2b3c4d-b.png"]),
    ("coco percent-encoded file_name", SPACES, "coco", [("my%20photos/a%20b.png", "my photos/a b.png")], LANDS),
    ("coco percent-encoded root file_name", SPACES, "coco", [("a%20b.png", "a b.png")], LANDS),
    ("coco ../ file_name", NEST, "coco", [("../pool/sub/a.png", "sub/a.png")], LANDS),
    ("coco UNC file_name", NEST, "coco", [("\\\\server\\share\\pool\\sub\\a.png", "sub/a.png")], LANDS),
    ("coco doubled slash", NEST, "coco", [("sub//a.png", "sub/a.png")], LANDS),
    ("coco ./ before a root image", NEST, "coco", [("./b.png", "b.png")], LANDS),
    ("coco upper-case suffix", NEST, "coco", [("sub/a.PNG", "sub/a.png")], LANDS),
    ("coco names differing in case", NEST, "coco", [("SUB/A.PNG", None)], ["differs from 'sub/a.png' only in case"]),
    ("coco trailing space", NEST, "coco", [("sub/a.png ", None)], ["does not have ('sub/a.png ')"]),
    ("cvat xml URL name", NEST, "cvat-xml", [("http://h/pool/sub/a.png", "sub/a.png")], LANDS),
    ("cvat xml Label Studio local-files root image", NEST, "cvat-xml", [("/data/local-files/?d=b.png", "b.png")],
     LANDS),
    # -- variants: label files named otherwise, wrapped deeper, split folders ----------------------------
    ("yolo label named after the image file beside stem-named ones", DOUBLE, "yolo",
     [("x.png.jpg", "x.png.jpg"), ("x", "x.png")], LANDS),
    ("yolo zip label named after the image file beside a stem-named one", NEST, "yolo-zip",
     [("labels/b.png", "b.png"), ("labels/sub/a", "sub/a.png")], LANDS),
    ("yolo percent-encoded label name", SPACES, "yolo", [("my%20photos/a%20b", "my photos/a b.png")], LANDS),
    ("yolo folder differing in case", NEST, "yolo", [("SUB/a", None)], ["'SUB/a' could mean image"]),
    ("yolo flat bundle name two deep", DEEP, "yolo", [("sub__deeper__a", "sub/deeper/a.png")], LANDS),
    ("yolo wrapped two folders deep", DEEP, "yolo", [("batch/x/labels/sub/deeper/a", "sub/deeper/a.png")], LANDS),
    ("yolo zip labels/train split", NEST, "yolo-zip", [("labels/train/sub/a", "sub/a.png"), ("labels/train/b", "b.png")],
     LANDS),
    ("yolo zip labels/train split, shared base name", NEST, "yolo-zip", [("labels/train/a", None)],
     ["'train/a' could mean image 'a.png' or 'sub/a.png'"]),
    ("cvat images/ folder inside obj_train_data", NEST, "cvat", [("obj_train_data/images/sub/a", "sub/a.png")],
     LANDS),
    ("yolo zip Labels/ in capitals", NEST, "yolo-zip", [("Labels/a", "a.png"), ("Labels/sub/a", "sub/a.png")], LANDS),
    ("yolo folder LABELS/ in a wrapping folder", NEST, "yolo", [("batch/LABELS/sub/a", "sub/a.png")], LANDS),
    ("yolo zip label/ is no label folder", NEST, "yolo-zip", [("label/a", None)], ["'label/a' could mean image"]),
    ("yolo zip a second copy in 'labels (1)'", NEST, "yolo-zip", [("labels/b", None), ("labels (1)/b", None)],
     ["labels (1)/b.txt", "label file outside labels/"]),
    ("yolo zip from macOS with __MACOSX/._ files", NEST, "yolo-zip",
     [("labels/sub/a", "sub/a.png"), ("__MACOSX/labels/sub/._a", None)], LANDS),
    # -- variants: the return spells a pool name in another case ---------------------------------------
    ("yolo label in upper case for a lower-case image", CAMERA, "yolo", [("IMG_1", None)],
     ["label for an image the project does not have", "'IMG_1'", "differs from 'img_1' only in case"]),
    ("yolo label in lower case for an upper-case image", CAMERA, "yolo", [("sub/img_2", None)],
     ["differs from 'sub/IMG_2' only in case"]),
    ("yolo label with the image's own case", CAMERA, "yolo", [("img_1", "img_1.jpg"), ("sub/IMG_2", "sub/IMG_2.JPG")],
     LANDS),
    ("coco file_name in upper case", CAMERA, "coco", [("IMG_1.JPG", None)], ["differs from 'img_1.jpg' only in case"]),
    ("coco file_name with only the suffix in another case", CAMERA, "coco", [("sub/IMG_2.jpg", "sub/IMG_2.JPG")],
     LANDS),
    ("cvat label in upper case", CAMERA, "cvat", [("obj_train_data/IMG_1", None)], ["differs from 'img_1' only in case"]),
    ("cvat xml name in lower case", CAMERA, "cvat-xml", [("sub/img_2.jpg", None)],
     ["differs from 'sub/IMG_2.JPG' only in case"]),
    # -- defect 16: a deep image, named in the bundle by its shortened key ---------------------------
    ("yolo long name as the bundle names it", LONG, "yolo",
     [(f"labels/{_bundle_stem(DEEP_LONG)}", DEEP_LONG), ("labels/a", "a.png")], LANDS),
    ("yolo long name, flat", LONG, "yolo", [(_bundle_stem(DEEP_LONG), DEEP_LONG)], LANDS),
    ("yolo zip long name", LONG, "yolo-zip", [(f"labels/{_bundle_stem(DEEP_LONG)}", DEEP_LONG)], LANDS),
    ("cvat long name", LONG, "cvat", [(f"obj_train_data/{_bundle_stem(DEEP_LONG)}", DEEP_LONG)], LANDS),
    ("coco long name", LONG, "coco", [(f"{_bundle_stem(DEEP_LONG)}.png", DEEP_LONG), ("a.png", "a.png")], LANDS),
    ("coco folder long name", LONG, "coco-folder", [(f"{_bundle_stem(DEEP_LONG)}.png", DEEP_LONG)], LANDS),
    ("cvat xml long name", LONG, "cvat-xml", [(f"{_bundle_stem(DEEP_LONG)}.png", DEEP_LONG)], LANDS),
    ("yolo long accented name", LONG_ACCENTS, "yolo",
     [(f"labels/{_bundle_stem(ACCENTED_LONG)}", ACCENTED_LONG)], LANDS),
    ("coco long accented name", LONG_ACCENTS, "coco", [(f"{_bundle_stem(ACCENTED_LONG)}.png", ACCENTED_LONG)],
     LANDS),
]


@pytest.mark.parametrize("pool, fmt, labels, refused", [c[1:] for c in KEY_CASES], ids=[c[0] for c in KEY_CASES])
def test_every_label_lands_on_its_own_image_or_the_import_is_refused(tmp_path, capsys, pool, fmt, labels,
                                                                      refused):
    project = _pool(tmp_path, pool)
    path, import_fmt = _write_return(tmp_path, fmt, [s for s, _ in labels])
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = main(["import", str(project), str(path), "--format", import_fmt])
    _out, err = capsys.readouterr()
    if refused is LANDS:
        assert code == 0, err
        assert _label_boxes(project) == _expected_boxes([image for _, image in labels])
        return
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("detal: error: ") and "Traceback" not in err, err
    for words in refused:
        assert words in lines[0], f"{words!r} not in {lines[0]!r}"
    assert snapshot(tmp_path) == before


def test_there_are_enough_key_cases():
    assert len(KEY_CASES) >= 95
    formats = {c[2] for c in KEY_CASES}
    assert formats == {"yolo", "yolo-zip", "cvat", "cvat-folder", "coco", "coco-folder", "cvat-xml", "cvat-xml-zip"}


# -- defect 3 as the last round left it: a YOLO file named x.png.txt with nothing to tell ---------------


@pytest.mark.parametrize("stem", ["x", "a.b", "with space", "café"])
def test_double_suffix_yolo_label_is_refused_not_put_on_the_other_image(tmp_path, capsys, stem):
    project = _pool(tmp_path, [f"{stem}.png", f"{stem}.png.jpg"])
    returned = tmp_path / "ret"
    returned.mkdir()
    (returned / f"{stem}.png.txt").write_text("0 0.5 0.5 0.2 0.2\n", encoding="utf-8")
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["import", str(project), str(returned)]) == 1
    err = capsys.readouterr().err
    assert f"{stem}.png.txt" in err and "could mean image" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("stem", ["x", "a.b", "with space", "café"])
def test_double_suffix_coco_file_name_names_the_file(tmp_path, capsys, stem):
    project = _pool(tmp_path, [f"{stem}.png", f"{stem}.png.jpg"])
    path, _ = _write_return(tmp_path, "coco", [f"{stem}.png"])
    assert main(["import", str(project), str(path), "--format", "coco"]) == 0, capsys.readouterr().err
    assert _label_boxes(project) == _expected_boxes([f"{stem}.png"])


# -- controls: names detal itself writes, and refusals that main made too ---------------------------------


@pytest.mark.parametrize("fmt, spelled", [
    ("yolo", ["sub__a", "a"]),
    ("yolo-zip", ["labels/sub__a", "labels/a"]),
    ("cvat", ["obj_train_data/sub__a", "obj_train_data/a"]),
    ("coco", ["sub__a.png", "a.png"]),
])
def test_bundle_names_land_on_their_images(tmp_path, capsys, fmt, spelled):
    project = _pool(tmp_path, NEST)
    path, import_fmt = _write_return(tmp_path, fmt, spelled)
    assert main(["import", str(project), str(path), "--format", import_fmt]) == 0, capsys.readouterr().err
    assert _label_boxes(project) == _expected_boxes(["sub/a.png", "a.png"])


def test_an_absolute_coco_path_to_a_root_image_whose_base_name_is_shared_is_refused(tmp_path, capsys):
    """``/data/pool/a.png`` could be ``a.png`` of a pool at /data/pool or the nested one: refused."""
    project = _pool(tmp_path, NEST)
    path, _ = _write_return(tmp_path, "coco", ["/data/pool/a.png"])
    assert main(["import", str(project), str(path), "--format", "coco"]) == 1
    assert "could mean image 'a.png' or 'sub/a.png'" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["yolo", "cvat-yolo", "coco", "cvat-xml"])
def test_detal_s_own_exports_of_such_pools_come_back_onto_their_images(tmp_path, capsys, fmt):
    """Every export of a pool holding a.png, sub/a.png, x.png and x.png.jpg imports back, image by image."""
    import numpy as np

    from detal.detections import Detections, Prediction
    from detal.export import export_predictions
    from detal.project.bundle import bundle_name
    from detal.store import Store

    pool = ["a.png", "sub/a.png", "x.png", "x.png.jpg", "b.png"]
    project = _pool(tmp_path, pool)
    with Store.open(project / "detal.db") as store:
        rows = {r.relpath.removeprefix("images/"): r for r in store.images()}
    links = tmp_path / "links"
    links.mkdir()
    preds = []
    for n, name in enumerate(pool):
        link = links / bundle_name(rows[name])  # as the cycle presents images to the exports
        link.symlink_to(tmp_path / "imgs" / name)
        c, cx, cy, w, h = _box(n)
        xyxy = [[(cx - w / 2) * SIZE, (cy - h / 2) * SIZE, (cx + w / 2) * SIZE, (cy + h / 2) * SIZE]]
        preds.append(Prediction(link, SIZE, SIZE, Detections(np.array(xyxy), np.array([c]), np.array([0.9]),
                                                             np.eye(len(NAMES))[[c]])))
    out = export_predictions(preds, NAMES, tmp_path / "exports", [fmt], copy_images=False)
    assert main(["import", str(project), str(out[fmt]), "--format", fmt]) == 0, capsys.readouterr().err
    assert _label_boxes(project) == _expected_boxes(pool)


# -- Label Studio: detal pull knows each task's image, so nothing is matched by name ----------------------


class _LabelStudio:
    """A Label Studio server reduced to what ``pull`` asks: the project, and its tasks with annotations."""

    url = "http://127.0.0.1:9"

    def __init__(self, tasks: list[dict]) -> None:
        self._tasks = tasks

    def project(self, ls_project: int) -> dict:
        return {"id": ls_project}

    def tasks(self, ls_project: int, page_size: int = 500, ids=None):
        return iter(self._tasks)


@pytest.mark.parametrize("pool", [NEST, DOUBLE, DEEP, LABELS_FOLDER], ids=["nested", "double suffix", "deep",
                                                                           "labels folder"])
def test_pull_puts_every_task_on_the_image_it_was_pushed_for(tmp_path, pool):
    from detal.labelstudio import pull_labels
    from detal.store import Store

    project = _pool(tmp_path, pool)
    with Store.open(project / "detal.db") as store:
        rows = {r.relpath.removeprefix("images/"): r for r in store.images()}
        with store.transaction():
            store.set_meta("label_studio", {"url": _LabelStudio.url, "project": 7})
            store.record_label_studio_tasks(7, [(rows[name], 100 + n) for n, name in enumerate(pool)])
    tasks = []
    for n, _name in enumerate(pool):
        c, cx, cy, w, h = _box(n)
        region = {"id": "r", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                  "original_width": SIZE, "original_height": SIZE,
                  "value": {"x": (cx - w / 2) * 100, "y": (cy - h / 2) * 100, "width": w * 100, "height": h * 100,
                            "rotation": 0, "rectanglelabels": [NAMES[c]]}}
        tasks.append({"id": 100 + n, "annotations": [
            {"id": n + 1, "result": [region], "was_cancelled": False, "updated_at": "2024-01-01T00:00:00Z"}]})
    report = pull_labels(project, client=_LabelStudio(tasks), env={})
    assert report.n_labeled == len(pool)
    assert _label_boxes(project) == _expected_boxes(pool)


# -- returns written by datumaro, an independent writer ------------------------------------------------------


@pytest.mark.parametrize("pool", [NEST, DOUBLE, DEEP], ids=["nested", "double suffix", "deep"])
@pytest.mark.parametrize("dm_format, fmt", [("yolo", "cvat-yolo"), ("yolo", "yolo"), ("coco_instances", "coco"),
                                            ("cvat", "cvat-xml")])
def test_a_return_written_by_datumaro_lands_on_its_images(tmp_path, capsys, pool, dm_format, fmt):
    import numpy as np

    datumaro = pytest.importorskip("datumaro")
    from datumaro.components.annotation import Bbox
    from datumaro.components.dataset_base import DatasetItem
    from datumaro.components.media import Image as DmImage

    project = _pool(tmp_path, pool)
    items = []
    for n, name in enumerate(pool):
        c, cx, cy, w, h = _box(n)
        stem, suffix = name.rsplit(".", 1)
        media = DmImage.from_numpy(data=np.zeros((SIZE, SIZE, 3), dtype=np.uint8), ext=f".{suffix}")
        items.append(DatasetItem(id=stem, subset="train", media=media, annotations=[
            Bbox((cx - w / 2) * SIZE, (cy - h / 2) * SIZE, w * SIZE, h * SIZE, label=c)]))
    out = tmp_path / "dm"
    datumaro.Dataset.from_iterable(items, categories=NAMES).export(str(out), dm_format, save_media=False)
    path = {"coco": out / "annotations" / "instances_train.json", "cvat-xml": out / "train.xml"}.get(fmt, out)
    assert main(["import", str(project), str(path), "--format", fmt]) == 0, capsys.readouterr().err
    assert _label_boxes(project) == _expected_boxes(pool)


def test_the_rule_holds_for_keys_made_otherwise():
    """A key init did not derive from the path (a long name cut to a hash, say) is matched by its path too."""
    from detal.export.keys import PoolNames

    pool = PoolNames([("sub__a", "sub/a.png"), ("a", "a.png"), ("sub__long-5f3a", "sub/" + "l" * 300 + ".png")])
    assert pool.match("sub/" + "l" * 300).key == "sub__long-5f3a"
    assert pool.match("sub/" + "l" * 300 + ".png", file_name=True).key == "sub__long-5f3a"
    assert pool.match("sub__long-5f3a").key == "sub__long-5f3a"
    assert pool.match("sub__long-5f3a.png", file_name=True).key == "sub__long-5f3a"
    assert pool.match("batch/sub/a").key == "sub__a"
    assert "could mean image 'a.png' or 'sub/a.png'" in str(pool.match("batch/a").problem)
    assert "differs from 'sub/a' only in case" in str(pool.match("SUB/A").problem)
