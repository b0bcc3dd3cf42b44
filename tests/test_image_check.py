"""The one image check (issue 22, defects 8, 9 and 17): Ultralytics' rules, at init, import and in the cycle.

The refusals at init and import are rows of ``test_hostile_project.py``; here:
the check agrees with Ultralytics' own dataset check and loader, large photos
pass without a warning, nothing raw reaches the terminal, and the cycle takes
out what a project made before the check still holds, so its training count
is Ultralytics' and no bundle ships an image nobody can train on.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sqlite3
import struct
import subprocess
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest
from imagekit import cut, encoded, flat_jpeg, half, png_bad_crc
from PIL import Image
from projectkit import NAMES, db_rows, label_cycle, make_project, write_classes

from detal.cli import main
from detal.commands import project as project_cmd
from detal.config import load_config
from detal.errors import DataError
from detal.fake import FakeAdapter
from detal.image_check import MAX_PIXELS, MIN_SIDE, TRAIN_FORMATS, inspect_image, why_unusable
from detal.project import init_project, project_status, run_cycle
from detal.store import Store

# -- the rules, against Ultralytics' own ------------------------------------------------------------

IMAGES = {  # name: content (the name's suffix is what the scan looks for)
    "ok.png": encoded("PNG"), "ok.jpg": encoded("JPEG"), "ok.bmp": encoded("BMP"), "ok.tif": encoded("TIFF"),
    "ok.webp": encoded("WEBP"), "png_named.jpg": encoded("PNG"), "jpeg_named.png": encoded("JPEG"),
    "ten_by_ten.png": encoded("PNG", (MIN_SIDE, MIN_SIDE)), "flat.jpg": flat_jpeg(64, 48),
    "bytes_after_the_end.jpg": encoded("JPEG") + b"trailing bytes",
    "gif.png": encoded("GIF"), "gif.jpg": encoded("GIF"), "ico.png": encoded("ICO"), "ppm.bmp": encoded("PPM"),
    "nine.png": encoded("PNG", (9, 9)), "thin.jpg": encoded("JPEG", (9, 200)), "flat.webp": encoded("WEBP", (200, 9)),
    "half.jpg": half(encoded("JPEG", (64, 48))), "tail_cut.jpg": cut(encoded("JPEG", (64, 48)), -400),
    "truncated.png": cut(encoded("PNG"), 2000), "bad_crc.png": png_bad_crc(),
    "truncated.bmp": cut(encoded("BMP"), 2000), "truncated.tif": cut(encoded("TIFF"), 2000),
    "truncated.webp": cut(encoded("WEBP"), -100), "empty.png": b"",
}


def _ultralytics_trains_on(path: Path) -> bool:
    """Ultralytics' verdict: its dataset check keeps the image, and then its loader decodes it."""
    from ultralytics.data.utils import verify_image_label
    from ultralytics.utils.patches import imread

    result = verify_image_label((str(path), str(path.with_suffix(".none")), "", False, 3, 0, 0, False))
    return result[8] == 0 and imread(str(path)) is not None  # (nc: corrupt count)


def test_the_check_agrees_with_ultralytics(tmp_path):
    pytest.importorskip("ultralytics")
    from detal.ultra.setup import prepare_ultralytics

    prepare_ultralytics()
    disagree = []
    for name, data in IMAGES.items():
        ours, theirs = tmp_path / "ours" / name, tmp_path / "theirs" / name
        for path in (ours, theirs):  # Ultralytics rewrites a JPEG it "restores": a copy each
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
        if (why_unusable(ours) is None) != _ultralytics_trains_on(theirs):
            disagree.append((name, why_unusable(ours)))
    assert not disagree
    assert sum(why_unusable(tmp_path / "ours" / n) is None for n in IMAGES) == 10  # both kinds are there


def test_train_formats_are_ultralytics_image_formats():
    pytest.importorskip("ultralytics")
    from ultralytics.data.utils import IMG_FORMATS

    assert {f.lower() for f in TRAIN_FORMATS} <= IMG_FORMATS | {"jpeg2000"}
    assert {"bmp", "jpeg", "png", "tiff", "webp"} <= {f.lower() for f in TRAIN_FORMATS}


@pytest.mark.parametrize(("name", "reason"), [
    ("gif.png", "a GIF image by its content (its name says .png)"),
    ("nine.png", "9x9 pixels; Ultralytics would leave it out of training (it needs at least 10 pixels a side)"),
    ("half.jpg", "truncated JPEG (OSError: image file is truncated"),
    ("truncated.bmp", "corrupt image, OpenCV cannot decode it"),
    ("empty.png", "corrupt image, empty file"),
])
def test_each_refusal_is_one_line_naming_the_file(tmp_path, name, reason):
    path = tmp_path / name
    path.write_bytes(IMAGES[name])
    with pytest.raises(DataError) as info:
        inspect_image(path, decode=True)
    message = str(info.value)
    assert message.startswith(f"{path}: {reason}") and "\n" not in message


def test_only_decoding_finds_what_only_opencv_finds(tmp_path):
    path = tmp_path / "truncated.bmp"
    path.write_bytes(IMAGES["truncated.bmp"])
    assert why_unusable(path, decode=False) is None
    assert "OpenCV cannot decode it" in why_unusable(path, decode=True)


# -- large photos (defect 17) -----------------------------------------------------------------------


def _pool_with(tmp: Path, name: str, data: bytes, *, labeled: bool = False) -> tuple[list[str], Path]:
    images = tmp / "imgs"
    images.mkdir()
    for i in range(3):
        (images / f"im{i}.png").write_bytes(encoded("PNG", (20, 16), seed=i))
    (images / name).write_bytes(data)
    argv = ["init", str(tmp / "p"), "--images", str(images), "--classes", str(write_classes(tmp / "classes.txt"))]
    if labeled:
        (tmp / "lab").mkdir()
        (tmp / "lab" / f"{Path(name).stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
        argv += ["--labels", str(tmp / "lab")]
    return argv, tmp / "p"


@pytest.fixture
def pil_default_limit(monkeypatch):
    """PIL's own limit, as a fresh process has it: detal must raise it itself."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1024 * 1024 * 1024 // 4 // 3)


@pytest.mark.parametrize("labeled", [False, True])
@pytest.mark.parametrize(("width", "height"), [(20000, 10000), (12000, 9000), (32768, 32768)])
def test_large_photos_are_accepted_without_a_warning(tmp_path, capfd, pil_default_limit, width, height, labeled):
    argv, project = _pool_with(tmp_path, "big.jpg", flat_jpeg(width, height), labeled=labeled)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(argv) == 0
    assert not [w for w in caught if "Decompression" in w.category.__name__]
    assert capfd.readouterr().err == ""
    with Store.open(project / "detal.db") as store:
        row = next(r for r in store.images() if r.relpath.endswith("big.jpg"))
    assert (row.width, row.height) == (width, height)
    assert width * height <= MAX_PIXELS


def test_a_large_photo_goes_into_the_bundle_and_is_predicted(tmp_path, pil_default_limit):
    argv, project = _pool_with(tmp_path, "big.jpg", flat_jpeg(20000, 10000))
    assert main([*argv, "--set", "initial_fraction=1", "--set", "max_labeled_fraction=1"]) == 0
    with zipfile.ZipFile(project / "cycles/0/batch-0.zip") as zf:
        assert zf.read("images/big.jpg") == (tmp_path / "imgs" / "big.jpg").read_bytes()
    result = FakeAdapter(3).predict(Path("w"), [tmp_path / "imgs" / "big.jpg"], conf=0)
    assert (result.predictions[0].width, result.predictions[0].height) == (20000, 10000)


def test_ultralytics_trains_on_a_200_megapixel_photo_once_prepared(tmp_path, pil_default_limit):
    pytest.importorskip("ultralytics")
    from PIL import Image

    from detal.ultra.setup import prepare_ultralytics

    prepare_ultralytics()
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS
    (tmp_path / "big.jpg").write_bytes(flat_jpeg(20000, 10000))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from ultralytics.data.utils import verify_image_label

        result = verify_image_label((str(tmp_path / "big.jpg"), str(tmp_path / "big.txt"), "", False, 3, 0, 0, False))
    assert result[8] == 0 and result[2] == (10000, 20000)  # kept, (h, w)
    assert not [w for w in caught if "Decompression" in w.category.__name__]


# -- nothing raw reaches the terminal ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["truncated.bmp", "truncated.tif", "truncated.png", "half.jpg"])
def test_a_refused_image_gives_one_line_on_the_terminal_itself(tmp_path, capfd, name):
    """OpenCV and libjpeg write to the file descriptor, past Python's sys.stderr: capfd sees them."""
    argv, _ = _pool_with(tmp_path, name, IMAGES[name], labeled=True)
    assert main(argv) == 1
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("detal: error: "), err
    assert name in err


# -- the cycle: a project made before the check (init recorded what it now refuses) -----------------


@pytest.fixture(autouse=True)
def fake_adapter(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))


def _as_if_init_had_taken(project: Path, relpath: str, data: bytes) -> None:
    """Put ``data`` in place of an image and record its hash, as an init without the check would have."""
    (project / relpath).write_bytes(data)
    conn = sqlite3.connect(project / "detal.db", isolation_level=None)
    try:
        conn.execute("UPDATE images SET sha256 = ? WHERE relpath = ?", (hashlib.sha256(data).hexdigest(), relpath))
    finally:
        conn.close()


def _rows(project: Path, status: str) -> list:
    with Store.open(project / "detal.db", readonly=True) as store:
        return store.images(status=status)


SPOILED = {  # content that replaces a .png image
    "gif": (encoded("GIF"), "a GIF image by its content"),
    "nine_pixels": (encoded("PNG", (9, 40)), "9x40 pixels"),
    "truncated_png": (cut(encoded("PNG"), 2000), "Truncated File Read"),
    "truncated_bmp": (cut(encoded("BMP"), 2000), "OpenCV cannot decode it"),
}


@pytest.mark.parametrize("kind", SPOILED)
def test_the_cycle_trains_on_what_ultralytics_trains_on(tmp_path, capsys, kind):
    data, reason = SPOILED[kind]
    project = make_project(tmp_path, n=40, val=3)
    label_cycle(project, 0, tmp_path)
    labeled, val = _rows(project, "labeled"), _rows(project, "val")
    _as_if_init_had_taken(project, labeled[-1].relpath, data)
    _as_if_init_had_taken(project, val[0].relpath, data)
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 0
    out, err = capsys.readouterr()
    assert f"train: {len(labeled) - 1} images" in out
    warned = [line for line in err.splitlines() if "unreadable" in line]
    assert len(warned) == 2 and all(reason in line for line in warned), err
    assert labeled[-1].relpath in err and val[0].relpath in err
    status = project_status(project)
    assert status["images"]["unreadable"] == 2 and status["cycles"][-1]["n_train"] == len(labeled) - 1
    assert [r.id for r in _rows(project, "labeled")] == [r.id for r in labeled[:-1]]
    assert main(["status", str(project)]) == 0
    assert "2 unreadable" in capsys.readouterr().out


def test_a_cycle_with_every_labeled_image_unreadable_says_so(tmp_path, capsys):
    project = make_project(tmp_path, n=40)
    label_cycle(project, 0, tmp_path)
    for row in _rows(project, "labeled"):
        _as_if_init_had_taken(project, row.relpath, encoded("GIF", seed=row.id))
    capsys.readouterr()
    assert main(["cycle", str(project)]) == 1
    err = capsys.readouterr().err
    assert "detal: error: " in err and "no labeled images left to train on" in err and "Traceback" not in err


def _bundle(project: Path, k: int) -> tuple[list[str], list[list[str]]]:
    with zipfile.ZipFile(project / f"cycles/{k}/batch-{k}.zip") as zf:
        members = zf.namelist()
        rows = [line.split(",") for line in zf.read("manifest.csv").decode().splitlines()[1:]]
    return members, rows


def _bundle_name(relpath: str) -> str:
    return relpath.removeprefix("images/").replace("/", "__")


@pytest.mark.parametrize("strategy", ["random", "topk", "mixed", "hybrid"])
def test_images_the_predictor_cannot_read_never_go_out(tmp_path, capsys, strategy):
    project = make_project(tmp_path, n=40, strategy=strategy)
    label_cycle(project, 0, tmp_path)
    unlabeled = _rows(project, "unlabeled")
    unreadable = {Path(r.relpath).name for r in unlabeled[::2]}
    report = run_cycle(project, FakeAdapter(len(NAMES), seed=2, unreadable=unreadable))
    members, rows = _bundle(project, 1)
    assert report.n_selected == len(rows) > 0
    assert all(score and n_boxes for _, score, n_boxes, *_ in rows)  # no blank row
    shipped = {m.removeprefix("images/") for m in members if m.startswith("images/")}
    assert not {_bundle_name(r.relpath) for r in unlabeled if Path(r.relpath).name in unreadable} & shipped
    taken_out = [p for p, why in report.dropped if why == "unreadable"]
    assert taken_out and all(Path(p).name in unreadable for p in taken_out)
    assert "the predictor could not read it: unreadable image" in capsys.readouterr().err
    status = project_status(project)
    assert status["images"]["unreadable"] == len(taken_out)
    assert status["cycles"][-1]["n_selected"] == len(rows)
    assert status["batch_out"][0]["remaining"] == len(rows)


@pytest.mark.parametrize("predictor_reads_it", [False, True])
def test_a_truncated_jpeg_is_never_shipped(tmp_path, capsys, predictor_reads_it):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(30):
        (images / f"im{i:02d}.jpg").write_bytes(encoded("JPEG", (64, 48), seed=i))
    cfg = load_config(None, ["initial_fraction=0.1", "batch_fraction=0.5", "max_labeled_fraction=1",
                             "strategy=random"])
    init_project(tmp_path / "p", images, write_classes(tmp_path / "classes.txt"), config=cfg)
    project = tmp_path / "p"
    label_cycle(project, 0, tmp_path)
    spoiled = set()
    for row in _rows(project, "unlabeled")[::2]:
        _as_if_init_had_taken(project, row.relpath, cut((project / row.relpath).read_bytes(), -400))
        spoiled.add(Path(row.relpath).name)
    adapter = FakeAdapter(len(NAMES), seed=2, unreadable=() if predictor_reads_it else spoiled)
    report = run_cycle(project, adapter)
    members, rows = _bundle(project, 1)
    assert not {f"images/{name}" for name in spoiled} & set(members)
    assert rows and all(score for _, score, *_ in rows)
    assert report.dropped and all(Path(p).name in spoiled and why == "unreadable" for p, why in report.dropped)
    assert ("truncated JPEG" if predictor_reads_it else "the predictor could not read it") in capsys.readouterr().err


# -- the store: older databases take the new problem -------------------------------------------------


def _narrow_the_problem_check(db: Path) -> None:
    """Make ``db`` as detal wrote it before 'unreadable' existed (the old CHECK on images.problem)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'images'").fetchone()[0]
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'images'",
                     (sql.replace("'missing', 'changed', 'unreadable'", "'missing', 'changed'"),))
        conn.execute(f"PRAGMA schema_version = {version + 1}")
        conn.execute("PRAGMA writable_schema = OFF")
    finally:
        conn.close()


def test_an_older_database_is_widened_and_keeps_every_row(tmp_path):
    project = make_project(tmp_path, n=20)
    label_cycle(project, 0, tmp_path)
    run_cycle(project, FakeAdapter(len(NAMES), seed=2))
    db = project / "detal.db"
    _narrow_the_problem_check(db)
    conn = sqlite3.connect(db)
    try:
        with pytest.raises(sqlite3.IntegrityError):  # the old constraint, as an older detal left it
            conn.execute("UPDATE images SET problem = 'unreadable' WHERE id = 0")
    finally:
        conn.close()
    before = db_rows(project)
    with Store.open(db, readonly=True) as store:  # read as it is, nothing written
        assert store.problem_counts()["unreadable"] == 0
    assert db_rows(project) == before
    with Store.open(db) as store:
        with store.transaction():
            store.mark_problem([3], "unreadable")
        assert store.problem_counts() == {"missing": 0, "changed": 0, "unreadable": 1}
        assert store.integrity_check() == "ok"
        assert store.execute("PRAGMA foreign_key_check").fetchall() == []
        assert {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type = 'index'")} >= {
            "images_status", "images_sha256"}
        with pytest.raises(sqlite3.IntegrityError), store.transaction():
            store.execute("UPDATE images SET problem = 'bogus' WHERE id = 4")
    after = db_rows(project)
    assert {t: rows for t, rows in after.items() if t != "images"} == {
        t: rows for t, rows in before.items() if t != "images"}
    assert [r for r in after["images"] if r[0] != 3] == [r for r in before["images"] if r[0] != 3]
    assert [r[-1] for r in after["images"] if r[0] == 3] == ["unreadable"]
    assert run_cycle(project, FakeAdapter(len(NAMES), seed=2), force=True).cycle == 2


def test_an_older_database_that_cannot_be_written_gives_one_line(tmp_path, capsys):
    project = make_project(tmp_path, n=20)
    _narrow_the_problem_check(project / "detal.db")
    before = db_rows(project)
    view = tmp_path / "ro"
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(project), str(view)], capture_output=True, check=False).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True,
                          check=False).returncode:
            pytest.skip("cannot make a bind mount read-only here")
        capsys.readouterr()
        assert main(["cycle", str(view)]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "cannot" in err and "detal.db" in err
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    assert db_rows(project) == before


def test_a_copied_project_keeps_working(tmp_path):
    """The widening touches only the schema text: a project copied elsewhere opens and cycles."""
    project = make_project(tmp_path, n=20)
    label_cycle(project, 0, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    assert run_cycle(copy, FakeAdapter(len(NAMES), seed=2)).n_train == 2


# -- one real run: detal's count is Ultralytics' count ----------------------------------------------


@pytest.mark.slow
def test_real_training_uses_every_image_detal_counts(tmp_path, capsys, monkeypatch):
    """An older project's labeled GIF leaves before training; a 108-megapixel photo is trained on, quietly."""
    pytest.importorskip("ultralytics")
    from detal.digits import DigitsSpec, build_digits
    from detal.ultra import UltralyticsAdapter

    build_digits(tmp_path / "digits", DigitsSpec(pool=16, val=4, imgsz=64, seed=0))
    pool, labels = tmp_path / "digits" / "images" / "pool", tmp_path / "digits" / "labels" / "pool"
    (pool / "big.jpg").write_bytes(flat_jpeg(12000, 9000))
    (labels / "big.txt").write_text("")  # a photo with no digit: a background image
    some = tmp_path / "some-labels"
    some.mkdir()
    for label in [*sorted(p for p in labels.glob("*.txt") if p.name != "big.txt")[:6], labels / "big.txt"]:
        (some / label.name).write_text(label.read_text())
    settings = ["model=yolov8n.yaml", "imgsz=64", "batch=8", "workers=0", "device=cpu", "epochs_per_cycle=1",
                "initial_fraction=0.3", "batch_fraction=0.25", "subset_fraction=0.5"]
    project = tmp_path / "proj"
    classes = write_classes(tmp_path / "classes.txt", [str(i) for i in range(10)])
    assert main(["init", str(project), "--images", str(pool), "--classes", str(classes), "--labels", str(some),
                 *[a for s in settings for a in ("--set", s)]]) == 0
    labeled = _rows(project, "labeled")
    assert len(labeled) == 7
    spoiled = next(r for r in labeled if not r.relpath.endswith("big.jpg"))
    _as_if_init_had_taken(project, spoiled.relpath, encoded("GIF"))
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: UltralyticsAdapter(cfg))
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["cycle", str(project)]) == 0
    out, err = capsys.readouterr()
    assert "train: 6 images" in out
    assert f"{spoiled.relpath}: unreadable (a GIF image by its content" in err
    log = (project / "cycles/1/train.log").read_text()
    assert " 6 images, 1 backgrounds, 0 corrupt" in log, log[-3000:]
    assert "Decompression" not in log + err and not [w for w in caught if "Decompression" in str(w.category)]


def test_a_jpeg_opencv_decodes_with_a_note_is_accepted_quietly(tmp_path, capfd):
    """Corrupt data inside a JPEG that ends well: Ultralytics trains on it; libjpeg's note stays off the terminal."""
    data = bytearray(encoded("JPEG", (160, 120)))
    data[len(data) // 2 : len(data) // 2 + 200] = b"\x00" * 200
    argv, _ = _pool_with(tmp_path, "noted.jpg", bytes(data), labeled=True)
    assert main(argv) == 0
    assert capfd.readouterr().err == ""


# -- the plain-PNG path: the answer (facts or message) PIL gives, without PIL ------------------------
def _chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(w: int = 12, h: int = 10, depth: int = 8, colour: int = 2, flt: int = 0, before_idat: bytes = b"",
         after_idat: bytes = b"", ihdr_crc: int | None = None, idat_crc: int | None = None, end: bool = True,
         cut_at: int | None = None) -> bytes:
    """A PNG built chunk by chunk; its pixel data is a few bytes (no check here decodes it)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, flt, 0)
    out = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr, ihdr_crc) + before_idat
           + _chunk(b"IDAT", zlib.compress(b"\x00" * 16), idat_crc) + after_idat + (_chunk(b"IEND", b"") if end else b""))
    return out if cut_at is None else out[:cut_at]


def _pil_made(mode: str) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (14, 11)).save(buf, "PNG")
    return buf.getvalue()


PNG_CASES = {  # name: (bytes, answered without PIL?) None: either
    "plain RGB": (_png(), True),
    "PIL-made RGB": (_pil_made("RGB"), None),
    "PIL-made L": (_pil_made("L"), None),
    "PIL-made P (a palette before IDAT)": (_pil_made("P"), False),
    "16-bit RGBA": (_png(depth=16, colour=6), True),
    "pHYs before IDAT": (_png(before_idat=_chunk(b"pHYs", b"\x00" * 9)), False),
    "tEXt after IDAT": (_png(after_idat=_chunk(b"tEXt", b"a\x00b")), True),
    "a second IDAT": (_png(after_idat=_chunk(b"IDAT", zlib.compress(b"\x01"))), True),
    "bad IHDR checksum": (_png(ihdr_crc=1), False),
    "bad IDAT checksum": (_png(idat_crc=1), False),
    "bad checksum after IDAT": (_png(after_idat=_chunk(b"tEXt", b"a\x00b", crc=5)), False),
    "a chunk type that is no name": (_png(after_idat=_chunk(b"t-Xt", b"")), False),
    "truncated after IHDR": (_png(cut_at=33), False),
    "truncated in IDAT": (_png(cut_at=50), False),
    "no IEND": (_png(end=False), False),
    "unknown bit depth": (_png(depth=3), False),
    "filter method 1": (_png(flt=1), False),
    "too small": (_png(w=8, h=12), True),
    "zero width": (_png(w=0), False),
    "over OpenCV's limit, under PIL's refusal": (_png(w=40_000, h=40_000), False),
    "a decompression bomb": (_png(w=60_000, h=60_000), False),
}


def _answer(path: Path):
    try:
        facts = inspect_image(path)
    except DataError as exc:
        return str(exc)
    return facts


@pytest.mark.parametrize("name", list(PNG_CASES))
def test_a_plain_png_gets_the_answer_pil_gives(name, tmp_path, monkeypatch):
    from detal import image_check

    data, without_pil = PNG_CASES[name]
    path = tmp_path / "x.png"
    path.write_bytes(data)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    got = _answer(path)
    if without_pil is not None:
        assert bool(opened) == (not without_pil)
    monkeypatch.setattr(image_check, "_plain_png_size", lambda data: None)  # PIL alone
    assert got == _answer(path)
    if name == "plain RGB":
        assert got == image_check.ImageFacts(hashlib.sha256(data).hexdigest(), 12, 10, "PNG")


def test_read_all_survives_short_reads(tmp_path, monkeypatch):
    from detal import image_check

    path = tmp_path / "a.bin"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    real_read = os.read
    monkeypatch.setattr(image_check.os, "read", lambda fd, n: real_read(fd, min(n, 7)))
    assert image_check._read_all(path) == data
    assert image_check._read_all(str(path)) == data
    path.write_bytes(b"")
    assert image_check._read_all(path) == b""
    with pytest.raises(FileNotFoundError):
        image_check._read_all(tmp_path / "missing.png")
