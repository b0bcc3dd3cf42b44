"""Hostile input outside the project core (issue 14): one line, exit 1, nothing changed.

Every ``case_*`` builds its input under ``t`` and returns the argv of one
``detal`` command and words the error line must hold. The runner checks, in
process: exit code 1, exactly one stderr line starting ``detal: error: ``
that holds every expected word, no traceback, and that nothing under ``t``
changed (files and database rows, :func:`projectkit.snapshot`).

The groups are the issue's: 2 (returned labels get the wrong classes), 6
(config values), 7 (YAML aliases), 8 (reader caps), 9 (tracebacks), 11 (a
COCO file without annotations), 12 (BOM), 14 (prelabel's class check), 15
(messages). Reader behaviour is also tested on
:func:`detal.export.read_returned_labels` below, and through ``import``,
which reads with it. The project's own groups (1, 3, 4, 5, 9, 10, 11, 13,
15, 16) are in ``test_hostile_project.py``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import unicodedata
import zipfile
from pathlib import Path

import pytest
import yaml
from PIL import Image
from projectkit import NAMES, batch_names, label_cycle, make_images, make_project, snapshot

from detal.cli import main
from detal.commands import prelabel as prelabel_cmd
from detal.commands import project as project_cmd
from detal.config import load_config
from detal.errors import DataError
from detal.export import read_returned, read_returned_labels
from detal.fake import FakeAdapter
from detal.labels import parse_class_names, read_classes
from detal.project import init_project, run_cycle

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
LINE = "0 0.5 0.5 0.2 0.2\n"
BIG_LABEL = LINE * (5 * 2**20 // len(LINE) + 1)  # valid lines, over the 4 MiB cap


_IMMUTABLE: list[Path] = []  # folders a case made immutable, made changeable again after it


@pytest.fixture(autouse=True)
def fake_adapters(monkeypatch):
    monkeypatch.setattr(project_cmd, "make_adapter", lambda cfg, project: FakeAdapter(len(NAMES), seed=2))
    monkeypatch.setattr(prelabel_cmd, "make_adapter", lambda cfg: FakeAdapter(3, seed=5))
    yield
    while _IMMUTABLE:
        subprocess.run(["chattr", "-i", str(_IMMUTABLE.pop())], check=False)


# -- builders ---------------------------------------------------------------------------------


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _zip(path: Path, files: dict[str, str | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _project(t: Path, classes: str | None = None) -> Path:
    """A 20-image project with batch 0 (2 images) out; ``classes`` is the classes.txt text."""
    if classes is None:
        return make_project(t, n=20)
    make_images(t / "images", 20)
    _write(t / "classes.txt", classes)
    cfg = load_config(None, ["initial_fraction=0.1", "max_labeled_fraction=0.42"])
    init_project(t / "proj", t / "images", t / "classes.txt", config=cfg)
    return t / "proj"


def _keys(project: Path) -> list[str]:
    return [n.rsplit(".", 1)[0] for n in batch_names(project, 0)]


def _sizes(project: Path) -> dict[str, tuple[int, int]]:
    """Real ``(width, height)`` of each image of batch 0, by file name."""
    with zipfile.ZipFile(project / "cycles" / "0" / "batch-0.zip") as zf:
        return {n: Image.open(io.BytesIO(zf.read(f"images/{n}"))).size for n in batch_names(project, 0)}


def _coco_doc(project: Path, names: list[str] | None = None) -> dict:
    names = names or (project / "classes.txt").read_text(encoding="utf-8").split()
    sizes = _sizes(project)
    images = [{"id": i, "file_name": n, "width": w, "height": h}
              for i, (n, (w, h)) in enumerate(sizes.items(), start=1)]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0}
                   for i in range(1, len(images) + 1)]
    categories = [{"id": k, "name": n} for k, n in enumerate(names, start=1)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _coco(t: Path, spoil=None, classes: str | None = None) -> list[str]:
    """``import PROJECT instances.json --format coco``, the document changed by ``spoil``."""
    project = _project(t, classes)
    doc = _coco_doc(project)
    if spoil:
        spoil(doc)
    path = _write(t / "instances.json", json.dumps(doc, ensure_ascii=False))
    return ["import", str(project), str(path), "--format", "coco"]


def _cvat(t: Path, obj_names: str | bytes = "cat\ndog\nbird\n", labels: dict[int, str] | None = None,
          classes: str | None = None, extra: dict[str, str | bytes] | None = None) -> list[str]:
    """``import PROJECT cvat.zip --format cvat-yolo``, with batch 0's labels (edited by ``labels``)."""
    project = _project(t, classes)
    keys = _keys(project)
    files: dict[str, str | bytes] = {"obj.names": obj_names, "obj.data": "classes = 3\n"}
    for i, k in enumerate(keys):
        files[f"obj_train_data/{k}.txt"] = (labels or {}).get(i, LINE)
    files.update(extra or {})
    path = _zip(t / "cvat.zip", files)
    return ["import", str(project), str(path), "--format", "cvat-yolo"]


def _config(t: Path, text: str, *extra: str) -> list[str]:
    return ["config", "--config", str(_write(t / "c.yaml", text)), *extra]


def _score(t: Path, out: Path) -> list[str]:
    make_images(t / "imgs", 2)
    weights = _write(t / "w.pt", b"not loaded: --out is checked first")
    return ["score", "--weights", str(weights), "--images", str(t / "imgs"), "--out", str(out), "--quiet"]


def _prelabel(t: Path, classes: str | Path, *extra: str) -> list[str]:
    make_images(t / "imgs", 3)
    weights = _write(t / "w.pt", b"fake weights")
    if not isinstance(classes, Path):
        classes = _write(t / "classes.txt", classes)
    return ["prelabel", "--weights", str(weights), "--images", str(t / "imgs"), "--out", str(t / "out"),
            "--classes", str(classes), "--quiet", *extra]


def _digits(out: Path) -> list[str]:
    return ["data", "digits", "--out", str(out), "--pool", "2", "--val", "1", "--imgsz", "32"]


def _bomb() -> str:
    """A billion-laughs config: 9 levels of 9 aliases under a real key, 9^9 leaves once copied."""
    lines = ["train_args:", '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"  {cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# -- group 2: returned labels mapped by name, ambiguity refused ------------------------------


def case_coco_two_categories_share_an_id(t):
    def spoil(d):
        d["categories"] = [{"id": 1, "name": "cat"}, {"id": 1, "name": "dog"}, {"id": 3, "name": "bird"}]
    return _coco(t, spoil), ["instances.json", "category id 1 is used by both 'cat' and 'dog'"]


def case_coco_two_categories_share_a_string_id(t):
    def spoil(d):
        d["categories"] = [{"id": "c", "name": "dog"}, {"id": "c", "name": "cat"}]
        for a in d["annotations"]:
            a["category_id"] = "c"
    return _coco(t, spoil), ["instances.json", "category id 'c' is used by both 'dog' and 'cat'"]


def case_coco_three_categories_share_an_id(t):
    def spoil(d):
        d["categories"] = [{"id": 2, "name": n} for n in ("cat", "dog", "bird")]
        for a in d["annotations"]:
            a["category_id"] = 2
    return _coco(t, spoil), ["instances.json", "category id 2", "ambiguous"]


def case_cvat_obj_names_repeats_a_name(t):
    return _cvat(t, "cat\ndog\ncat\n"), ["obj.names", "duplicate class names cat"]


def case_cvat_obj_names_repeats_after_blank_lines(t):
    return _cvat(t, "dog\n\ncat\n  dog  \n"), ["obj.names", "duplicate class names dog"]


def case_cvat_obj_names_nfc_and_nfd(t):
    return _cvat(t, f"{NFC}\n{NFD}\ncat\n", classes=f"{NFC}\ncat\ndog\n"), [
        "obj.names", "differ only in Unicode normalisation", "'cafe\\u0301'"]


def case_cvat_obj_names_empty(t):
    return _cvat(t, "\n\n"), ["obj.names", "lists no class names"]


# -- group 6: numeric config values finite and in range when read -----------------------------


def case_config_empty_image_score_nan(t):
    return _config(t, "empty_image_score: .nan\n"), ["c.yaml", "empty_image_score must be a finite number"]


def case_config_empty_image_score_minus_inf_override(t):
    return ["config", "--set", "empty_image_score=-.inf"], ["empty_image_score must be a finite number"]


def case_config_seed_negative(t):
    return ["config", "--set", "seed=-1"], ["seed must be at least 0, got -1"]


def case_config_seed_past_32_bits(t):
    return _config(t, "seed: 4294967296\n"), ["c.yaml", "seed must be at most 4294967295"]


def case_config_seed_1e23_as_integer(t):
    return _config(t, "seed: 100000000000000000000000\n"), ["c.yaml", "seed must be at most 4294967295"]


def case_config_epochs_huge(t):
    return _config(t, "epochs_per_cycle: 99999999999\n"), ["c.yaml", "epochs_per_cycle must be at most"]


def case_config_float_key_given_a_400_digit_integer(t):
    return _config(t, f"empty_image_score: {'9' * 400}\n"), [
        "c.yaml", "empty_image_score must be a finite number", "400 digits"]


def case_config_integer_of_5000_digits(t):
    return _config(t, f"seed: {'1' * 5000}\n"), ["c.yaml", "not valid YAML"]


def case_config_override_of_5000_digits(t):
    return ["config", "--set", f"seed={'7' * 5000}"], ["--set seed", "cannot parse value"]


def case_config_imgsz_huge(t):
    return ["config", "--set", "imgsz=1000000"], ["imgsz must be at most 16384, got 1000000"]


def case_config_train_args_nan(t):
    return _config(t, "train_args: {lr0: .nan}\n"), ["c.yaml", "train_args.lr0 must be a finite number"]


def case_config_train_args_inf_in_list(t):
    return _config(t, "train_args: {mosaic_sizes: [1, .inf]}\n"), ["train_args.mosaic_sizes[1]", "finite"]


def case_init_seed_negative(t):
    make_images(t / "imgs", 4)
    _write(t / "classes.txt", "cat\n")
    return ["init", str(t / "p"), "--images", str(t / "imgs"), "--classes", str(t / "classes.txt"),
            "--set", "seed=-1"], ["seed must be at least 0"]


def case_cycle_project_config_nan(t):
    project = _project(t)
    cfg = project / "config.yaml"
    cfg.write_text(cfg.read_text().replace("empty_image_score: 0.0", "empty_image_score: .nan"))
    return ["cycle", str(project), "--force"], ["config.yaml", "empty_image_score must be a finite number"]


# -- group 7: YAML aliases refused --------------------------------------------------------------


def case_config_alias_bomb(t):
    return _config(t, _bomb()), ["c.yaml", "line 3", "YAML aliases (*a) are not allowed"]


def case_config_alias_in_train_args(t):
    return _config(t, "train_args: {lr0: &l 0.01, lrf: *l}\n"), ["c.yaml", "line 1", "(*l) are not allowed"]


def case_config_alias_bomb_in_one_override(t):
    value = "{" + ", ".join(line.strip() for line in _bomb().splitlines()[1:]) + "}"
    return ["config", "--set", f"train_args={value}"], ["--set train_args", "cannot parse value", "aliases"]


def case_config_merge_key(t):
    text = "train_args:\n  base: &b {lr0: 0.01}\n  run:\n    <<: *b\n"
    return _config(t, text), ["c.yaml", "line 4", "(*b) are not allowed"]


def case_config_nested_too_deeply(t):
    return _config(t, "train_args: {x: " + "[" * 5000 + "]" * 5000 + "}\n"), ["c.yaml", "not valid YAML"]


# -- issue 22, defect 13, variants: what YAML 1.1 reads otherwise, tabs, odd floats ---------------------


def case_config_train_args_float_sexagesimal(t):
    return _config(t, "train_args: {lr0: 0:0.5}\n"), ["'0:0.5' is not a plain decimal number"]


def case_config_float_override_sexagesimal(t):
    return _config(t, "seed: 1\n", "--set", "empty_image_score=1:30.5"), ["'1:30.5' is not a plain decimal"]


def case_config_tab_after_a_colon(t):
    return _config(t, "seed:\t4\n"), ["c.yaml", "line 1", "found character '\\t'", "use spaces"]


def case_config_indented_with_a_tab(t):
    return _config(t, "train_args:\n\tlr0: 0.1\n"), ["c.yaml", "line 2", "use spaces"]


def case_config_unclosed_list_names_its_line(t):
    return _config(t, "seed: 1\nimgsz: [64\n"), ["c.yaml", "line 3", "not valid YAML (", "expected ',' or ']'"]


def case_config_fraction_nan(t):
    return _config(t, "initial_fraction: .nan\n"), ["initial_fraction must be a finite number"]


def case_config_fraction_minus_inf(t):
    return _config(t, "subset_fraction: -.Inf\n"), ["subset_fraction must be a finite number, got -inf"]


def case_config_fraction_overflowing_to_inf(t):
    return _config(t, "initial_fraction: 1e400\n"), ["initial_fraction must be a finite number, got inf"]


def case_config_fraction_underflowing_to_zero(t):
    return _config(t, "initial_fraction: 1e-400\n"), ["initial_fraction must lie in (0, 1], got 0.0"]


def case_config_fraction_hex_float(t):
    return _config(t, "initial_fraction: 0x1p-2\n"), ["initial_fraction must be float, got '0x1p-2'"]


def case_config_seed_octal_0o(t):
    return _config(t, "seed: 0o10\n"), ["seed must be int, got '0o10'"]


def case_config_seed_yes(t):
    return _config(t, "seed: yes\n"), ["line 1", "'yes' is not true or false"]


def case_config_seed_a_date(t):
    return _config(t, "seed: 2024-01-01\n"), ["seed must be int, got datetime.date(2024, 1, 1)"]


def case_config_seed_binary_tag(t):
    return _config(t, "seed: !!binary aGVsbG8=\n"), ["seed must be int"]


def case_config_python_tag(t):
    return _config(t, "seed: !!python/object:os.system ls\n"), ["could not determine a constructor"]


def case_config_key_twice_in_train_args(t):
    return _config(t, "train_args:\n  lr0: 0.1\n  lr0: 0.2\n"), ["line 3", "key 'lr0' given twice (first on line 2)"]


def case_config_two_documents(t):
    return _config(t, "seed: 1\n---\nseed: 2\n"), ["line 2", "expected a single document in the stream, but found another document"]


def case_config_top_level_list(t):
    return _config(t, "- seed\n"), ["top level must be a mapping"]


def case_yolo_data_yaml_indented_with_a_tab(t):
    return _returned(t, {"data.yaml": "names:\n\t- cat\n\t- dog\n"}, labels_in="labels/"), [
        "returned.zip!data.yaml", "line 2", "use spaces"]


def case_init_classes_data_yaml_indented_with_a_tab(t):
    return _init_classes(t, "data.yaml", "names:\n\t- cat\n"), ["data.yaml", "line 2", "use spaces"]

def case_cycle_project_config_alias(t):
    project = _project(t)
    cfg = project / "config.yaml"
    cfg.write_text(cfg.read_text().replace("train_args: {}", "train_args: {a: &x 1, b: *x}"))
    return ["cycle", str(project), "--force"], ["config.yaml", "YAML aliases (*x) are not allowed"]


# -- group 8: cvat-yolo and coco readers capped ---------------------------------------------------


def case_cvat_label_file_over_4_mib(t):
    return _cvat(t, labels={0: BIG_LABEL}), ["cvat.zip!obj_train_data/", "file too large", "4 MiB"]


def case_cvat_obj_names_over_4_mib(t):
    return _cvat(t, "cat\ndog\nbird\n" + "x\n" * (2 * 2**20 + 1)), ["obj.names", "file too large"]


def case_cvat_300_bad_lines_list_200(t):
    return _cvat(t, labels={0: "0 0.5 0.5\n" * 300}), ["300 problem", "; ... and 100 more"]


def case_cvat_sixth_field_not_a_number(t):
    return _cvat(t, labels={1: "0 0.5 0.5 0.2 0.2 high\n"}), [
        ".txt:1", "sixth field (confidence) 'high' is not a number"]


def case_cvat_sixth_field_nan(t):
    return _cvat(t, labels={0: "0 0.5 0.5 0.2 0.2 nan\n"}), [".txt:1", "sixth field (confidence)", "not finite"]


def case_cvat_sixth_field_out_of_range(t):
    return _cvat(t, labels={0: "0 0.5 0.5 0.2 0.2 7\n"}), [".txt:1", "sixth field (confidence) 7 outside"]


def case_coco_250_bad_annotations_list_200(t):
    def spoil(d):
        d["annotations"] = [{"id": i, "image_id": 1, "category_id": 99, "bbox": [1, 1, 2, 2]}
                            for i in range(250)]
    return _coco(t, spoil), ["instances.json", "250 problem", "; ... and 50 more"]


# -- group 9: tracebacks that become one line ----------------------------------------------------


def case_score_out_is_a_directory(t):
    (t / "outdir").mkdir()
    return _score(t, t / "outdir"), ["outdir", "is a directory"]


def case_score_out_is_the_working_folder(t):
    return _score(t, t), [str(t), "is a directory"]


def case_score_out_under_a_file(t):
    _write(t / "afile", "x")
    return _score(t, t / "afile" / "scores.csv"), ["afile", "is a file, not a folder"]


def case_coco_image_id_is_a_list(t):
    return _coco(t, lambda d: d["images"][0].update(id=[1])), ["instances.json", "id [1] is not an integer"]


def case_coco_category_id_is_a_dict(t):
    return _coco(t, lambda d: d["categories"][0].update(id={"k": 1})), [
        "instances.json", "category 'cat': id {'k': 1} is not an integer"]


def case_coco_annotation_image_id_is_a_list(t):
    return _coco(t, lambda d: d["annotations"][0].update(image_id=[1, 2])), [
        "instances.json", "unknown image_id [1, 2]"]


def case_coco_annotation_category_id_is_a_dict(t):
    return _coco(t, lambda d: d["annotations"][0].update(category_id={"id": 1})), [
        "instances.json", "unknown category_id {'id': 1}"]


def case_coco_image_id_is_null(t):
    return _coco(t, lambda d: d["images"][1].update(id=None)), ["instances.json", "id None is not an integer"]


def case_coco_file_name_is_a_dict(t):
    return _coco(t, lambda d: d["images"][0].update(file_name={"a": 1})), [
        "instances.json", "file_name must be a non-empty string"]


def case_coco_nested_too_deeply(t):
    project = _project(t)
    path = _write(t / "instances.json", "[" * 100000 + "]" * 100000)
    return ["import", str(project), str(path), "--format", "coco"], ["instances.json", "not valid JSON"]


def case_coco_integer_of_5000_digits(t):
    project = _project(t)
    path = _write(t / "instances.json", '{"images": [{"id": ' + "1" * 5000 + "}]}")
    return ["import", str(project), str(path), "--format", "coco"], ["instances.json", "not valid JSON"]


def case_digits_out_is_a_file(t):
    _write(t / "afile", "x")
    return _digits(t / "afile"), ["afile", "is a file, not a folder"]


def case_digits_out_under_a_file(t):
    _write(t / "afile", "x")
    return _digits(t / "afile" / "d"), ["afile/d", "is under", "is a file"]


def case_digits_images_folder_is_a_file(t):
    _write(t / "d" / "images", "x")
    return _digits(t / "d"), ["images", "cannot write the dataset"]


# -- group 11: COCO without annotations -----------------------------------------------------------


def case_coco_no_annotations_at_all(t):
    return _coco(t, lambda d: d.update(annotations=[])), [
        "instances.json", "no annotations at all", "2 listed image(s)"]


def case_coco_no_annotations_and_no_categories(t):
    return _coco(t, lambda d: d.update(annotations=[], categories=[])), ["no annotations at all"]


def case_coco_folder_without_annotations(t):
    project = _project(t)
    doc = _coco_doc(project)
    doc["annotations"] = []
    _write(t / "coco" / "annotations" / "instances_default.json", json.dumps(doc))
    return ["import", str(project), str(t / "coco"), "--format", "coco"], [
        "instances_default.json", "no annotations at all"]


# -- group 14: prelabel checks the class count without boxes -------------------------------------


def case_prelabel_no_boxes_too_few_names(t):
    return _prelabel(t, "cat\ndog\n", "--set", "prelabel_conf=1", "--set", "score_conf=1"), [
        "w.pt", "predicts 3 classes but 2 class names"]


def case_prelabel_no_boxes_too_many_names(t):
    return _prelabel(t, "a\nb\nc\nd\n", "--set", "prelabel_conf=1", "--set", "score_conf=1"), [
        "predicts 3 classes but 4 class names"]


def case_prelabel_model_finds_nothing(t):
    prelabel_cmd.make_adapter = lambda cfg: FakeAdapter(3, max_boxes=0)  # the fixture restores it
    return _prelabel(t, "cat\n"), ["predicts 3 classes but 1 class names"]


# -- group 15: messages ---------------------------------------------------------------------------


def case_prelabel_classes_is_a_directory(t):
    (t / "cls").mkdir()
    return _prelabel(t, t / "cls"), ["cls", "is a directory, expected a classes file"]


def case_init_classes_is_a_directory(t):
    make_images(t / "imgs", 4)
    (t / "cls").mkdir()
    return ["init", str(t / "p"), "--images", str(t / "imgs"), "--classes", str(t / "cls")], [
        "cls", "is a directory"]


def case_config_is_a_directory(t):
    (t / "cfg").mkdir()
    return ["config", "--config", str(t / "cfg")], ["cfg", "is a directory"]


def case_init_classes_nfc_and_nfd(t):
    make_images(t / "imgs", 4)
    _write(t / "classes.txt", f"{NFC}\n{NFD}\n")
    return ["init", str(t / "p"), "--images", str(t / "imgs"), "--classes", str(t / "classes.txt")], [
        "classes.txt", "'café' and 'cafe\\u0301' differ only in Unicode normalisation"]


def case_prelabel_classes_nfd_twice_with_bom(t):
    return _prelabel(t, f"\ufeff{NFD}\n{NFD}\ncat\n"), ["classes.txt", "duplicate class names 'cafe\\u0301'"]


def case_cvat_nfd_name_against_nfc_project(t):
    return _cvat(t, f"{NFD}\ncat\ndog\n", classes=f"{NFC}\ncat\ndog\n"), [
        "class 'cafe\\u0301' (id 0) is not a project class", "differs from 'café' only in Unicode normalisation"]


def case_coco_nfd_category_against_nfc_project(t):
    def spoil(d):
        d["categories"][0]["name"] = NFD
    return _coco(t, spoil, classes=f"{NFC}\ncat\ndog\n"), [
        "category 1 is not a project class", "'cafe\\u0301'", "only in Unicode normalisation"]


def case_coco_given_as_a_zip(t):
    project = _project(t)
    path = _zip(t / "coco.zip", {"annotations/instances_default.json": json.dumps(_coco_doc(project))})
    return ["import", str(project), str(path), "--format", "coco"], ["coco.zip", "is a zip, expected a COCO JSON"]


def case_coco_zip_named_json(t):
    project = _project(t)
    path = _zip(t / "instances.json", {"instances.json": json.dumps(_coco_doc(project))})
    return ["import", str(project), str(path), "--format", "coco"], ["instances.json", "is a zip"]


def case_coco_folder_holding_a_zip_named_json(t):
    project = _project(t)
    _zip(t / "ret" / "annotations" / "instances_default.json", {"x.json": "{}"})
    return ["import", str(project), str(t / "ret"), "--format", "coco"], ["instances_default.json", "is a zip"]


# -- issue 22, defect 4: a names file that is present is used or refused, never ignored -------------

CVAT_DATA = "classes = 3\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n"


def _returned(t: Path, files: dict[str, str], *, labels_in: str = "obj_train_data/", zipped: bool = True,
              fmt: str | None = None) -> list[str]:
    """``import PROJECT RETURN`` (default format unless ``fmt``): batch 0's labels under ``labels_in``
    (class id 0 in every one) beside ``files``, as a zip or an unpacked folder."""
    project = _project(t)
    out: dict[str, str | bytes] = dict(files)
    for k in _keys(project):
        out[f"{labels_in}{k}.txt"] = LINE
    if zipped:
        path = _zip(t / "returned.zip", out)
    else:
        for name, data in out.items():
            _write(t / "returned" / name, data)
        path = t / "returned"
    return ["import", str(project), str(path), *(["--format", fmt] if fmt else [])]


def _cvat_files(names: str = "car\ntruck\nbus\n", prefix: str = "", data: str = CVAT_DATA) -> dict[str, str]:
    return {f"{prefix}obj.names": names, f"{prefix}obj.data": data,
            f"{prefix}train.txt": "data/obj_train_data/x.png\n"}


def case_yolo_cvat_zip_obj_names_not_project_classes(t):
    return _returned(t, _cvat_files()), [
        "returned.zip!obj_train_data/", "class 'car' (id 0) is not a project class", "named so in",
        "returned.zip!obj.names"]


def case_yolo_cvat_folder_obj_names_not_project_classes(t):
    return _returned(t, _cvat_files(), zipped=False), [
        "class 'car' (id 0) is not a project class", f"{t / 'returned' / 'obj.names'}"]


def case_yolo_cvat_zip_in_a_wrapping_folder(t):
    return _returned(t, _cvat_files(prefix="task_7/"), labels_in="task_7/obj_train_data/"), [
        "class 'car' (id 0) is not a project class", "returned.zip!task_7/obj.names"]


def case_yolo_cvat_zip_one_project_class_among_others(t):
    return _returned(t, _cvat_files("person\ncat\ndog\n")), [
        "class 'person' (id 0) is not a project class", "obj.names"]


def case_yolo_cvat_zip_obj_names_repeats_a_name(t):
    return _returned(t, _cvat_files("cat\ncat\ndog\n")), ["returned.zip!obj.names", "duplicate class names cat"]


def case_yolo_cvat_zip_obj_names_empty(t):
    return _returned(t, _cvat_files("\n")), ["returned.zip!obj.names", "lists no class names"]


def case_yolo_cvat_zip_obj_names_nfc_and_nfd(t):
    return _returned(t, _cvat_files(f"{NFC}\n{NFD}\ncat\n")), [
        "obj.names", "differ only in Unicode normalisation"]


def case_yolo_cvat_zip_without_its_obj_names(t):
    files = _cvat_files()
    del files["obj.names"]
    return _returned(t, files), ["returned.zip!obj.data", "names the classes in 'data/obj.names'",
                                 "which this return does not hold"]


def case_yolo_cvat_zip_obj_data_counts_other_classes(t):
    return _returned(t, _cvat_files("dog\ncat\nbird\n", data=CVAT_DATA.replace("= 3", "= 4"))), [
        "returned.zip!obj.data", "says classes = 4", "obj.names lists 3"]


def case_yolo_cvat_obj_names_disagrees_with_classes_txt(t):
    return _returned(t, {**_cvat_files("dog\ncat\nbird\n"), "classes.txt": "cat\ndog\nbird\n"}), [
        "obj.names", "its class list disagrees with", "classes.txt", "class id 0 is 'dog' here but 'cat'"]


def case_yolo_darknet_names_file_of_another_name(t):
    return _returned(t, {"voc.names": "car\ntruck\nbus\n"}, labels_in=""), [
        "class 'car' (id 0) is not a project class", "returned.zip!voc.names"]


def case_yolo_roboflow_darknet_labels(t):
    return _returned(t, {"train/_darknet.labels": "car\ntruck\nbus\n"}, labels_in="train/"), [
        "class 'car' (id 0) is not a project class", "returned.zip!train/_darknet.labels"]


def case_yolo_dataset_yaml_not_project_classes(t):
    return _returned(t, {"dataset.yaml": "names: [car, truck, bus]\n"}, labels_in="labels/", zipped=False), [
        "class 'car' (id 0) is not a project class", "dataset.yaml"]


def case_yolo_dataset_yml_in_a_zip(t):
    return _returned(t, {"dataset.yml": "names:\n  - car\n  - cat\n"}, labels_in="labels/train/"), [
        "class 'car' (id 0) is not a project class", "returned.zip!dataset.yml"]


def case_yolo_dataset_yaml_names_as_a_map(t):
    return _returned(t, {"dataset.yaml": "path: .\ntrain: images\nnames:\n  0: car\n  1: cat\n"},
                     labels_in="labels/"), ["class 'car' (id 0) is not a project class", "dataset.yaml"]


def case_yolo_dataset_yaml_in_a_subfolder(t):
    return _returned(t, {"export/dataset.yaml": "names: [car, truck, bus]\n"}, labels_in="export/labels/"), [
        "class 'car' (id 0) is not a project class", "returned.zip!export/dataset.yaml"]


def case_yolo_dataset_yaml_with_unusable_names(t):
    return _returned(t, {"dataset.yaml": "names: 5\n"}, labels_in="labels/"), [
        "returned.zip!dataset.yaml", "'names' must be a list of class names or a map of id: name"]


def case_yolo_dataset_yaml_repeats_a_name(t):
    return _returned(t, {"dataset.yaml": "names: [cat, cat, dog]\n"}, labels_in="labels/"), [
        "returned.zip!dataset.yaml", "duplicate class names cat"]


def case_yolo_dataset_yaml_nc_disagrees(t):
    return _returned(t, {"dataset.yaml": "nc: 2\nnames: [dog, cat, bird]\n"}, labels_in="labels/"), [
        "returned.zip!dataset.yaml", "nc is 2 but names lists 3"]


def case_yolo_yaml_that_does_not_parse(t):
    return _returned(t, {"dataset.yaml": "names: [dog, cat\n"}, labels_in="labels/"), [
        "returned.zip!dataset.yaml", "it may name the classes"]


def case_yolo_dataset_yaml_disagrees_with_classes_txt(t):
    return _returned(t, {"classes.txt": "cat\ndog\nbird\n", "dataset.yaml": "names: [dog, cat, bird]\n"},
                     labels_in="labels/"), ["dataset.yaml", "disagrees with", "classes.txt"]


def case_yolo_two_yamls_disagree(t):
    return _returned(t, {"data.yaml": "names: [cat, dog, bird]\n", "sub/dataset.yaml": "names: [bird, dog, cat]\n"},
                     labels_in="labels/"), ["sub/dataset.yaml", "disagrees with", "returned.zip!data.yaml"]


def case_cvat_classes_txt_disagrees_with_obj_names(t):
    return _returned(t, {**_cvat_files("cat\ndog\nbird\n"), "classes.txt": "dog\ncat\nbird\n"}, fmt="cvat-yolo"), [
        "classes.txt", "its class list disagrees with", "returned.zip!obj.names"]


def case_cvat_dataset_yaml_disagrees_with_obj_names(t):
    return _returned(t, {**_cvat_files("cat\ndog\nbird\n"), "dataset.yaml": "names: [bird, cat, dog]\n"},
                     fmt="cvat-yolo"), ["dataset.yaml", "disagrees with", "obj.names"]


def case_cvat_obj_data_counts_other_classes(t):
    return _returned(t, _cvat_files("cat\ndog\nbird\n", data=CVAT_DATA.replace("= 3", "= 5")), fmt="cvat-yolo",
                     zipped=False), ["obj.data", "says classes = 5"]


def case_cvat_folder_obj_names_not_project_classes_nested(t):
    return _returned(t, _cvat_files(prefix="job/"), labels_in="job/obj_train_data/", fmt="cvat-yolo",
                     zipped=False), ["class 'car' (id 0) is not a project class", "named so in"]


def _init_with_labels(t: Path, files: dict[str, str], *, val: bool = False) -> list[str]:
    """``init`` over 6 images whose label folder (``--labels``, or ``--val-labels`` with ``val``)
    holds ``files`` and a label (class 0) for the first and the last image, in a subfolder or not."""
    make_images(t / "imgs", 6)
    _write(t / "classes.txt", "cat\ndog\nbird\n")
    labels = t / "labels"
    for name, text in files.items():
        _write(labels / name, text)
    for stem in ("im000", "im005"):
        _write(labels / f"{stem}.txt", LINE)
    argv = ["init", str(t / "p"), "--images", str(t / "imgs"), "--classes", str(t / "classes.txt")]
    if val:
        make_images(t / "val", 2, start=0)
        for stem in ("im000", "im001"):
            _write(labels / f"{stem}.txt", LINE)
        return [*argv, "--val-images", str(t / "val"), "--val-labels", str(labels)]
    return [*argv, "--labels", str(labels)]


def case_init_labels_obj_names_not_project_classes(t):
    return _init_with_labels(t, {"obj.names": "car\ntruck\nbus\n"}), [
        "im000.txt", "class 'car' (id 0) is not a project class", "obj.names"]


def case_init_labels_dataset_yaml_not_project_classes(t):
    return _init_with_labels(t, {"dataset.yaml": "names: [car, truck]\n"}), [
        "im005.txt", "class 'car' (id 0) is not a project class", "dataset.yaml"]


def case_init_labels_classes_txt_repeats_a_name(t):
    return _init_with_labels(t, {"classes.txt": "cat\ncat\ndog\n"}), [
        "labels/classes.txt", "duplicate class names cat"]


def case_init_labels_two_names_files_disagree(t):
    return _init_with_labels(t, {"classes.txt": "cat\ndog\nbird\n", "data.yaml": "names: [dog, cat, bird]\n"}), [
        "disagrees with", "classes.txt"]


def case_init_val_labels_classes_txt_not_project_classes(t):
    return _init_with_labels(t, {"classes.txt": "person\ncar\n"}, val=True), [
        "class 'person' (id 0) is not a project class", "classes.txt"]



# -- issue 22, defect 10: --classes given the wrong kind of list ---------------------------------


def _init_classes(t: Path, name: str, text: str | bytes) -> list[str]:
    make_images(t / "imgs", 4)
    return ["init", str(t / "p"), "--images", str(t / "imgs"), "--classes", str(_write(t / name, text))]


_DATA_YAML = "path: .\ntrain: images/train\nval: images/val\n"


def case_init_classes_data_yaml_without_names(t):
    return _init_classes(t, "data.yaml", _DATA_YAML + "nc: 3\n"), [
        "data.yaml: read as a data.yaml for its class names: no 'names' key"]


def case_init_classes_data_yaml_nc_disagrees(t):
    return _init_classes(t, "data.yaml", _DATA_YAML + "nc: 4\nnames: [cat, dog, bird]\n"), [
        "nc is 4 but names lists 3 classes"]


def case_init_classes_data_yaml_ids_with_a_gap(t):
    return _init_classes(t, "data.yaml", _DATA_YAML + "names:\n  0: cat\n  2: bird\n"), [
        "the keys of 'names' must be the class ids 0..1"]


def case_init_classes_data_yaml_names_a_string(t):
    return _init_classes(t, "dataset.yml", "names: cat\n"), [
        "dataset.yml", "'names' must be a list of class names or a map of id: name"]


def case_init_classes_data_yaml_unclosed_list(t):
    return _init_classes(t, "data.yaml", "names: [cat, dog\n"), ["data.yaml", "not valid YAML"]


def case_init_classes_txt_holding_yaml_with_a_repeat(t):
    return _init_classes(t, "classes.txt", _DATA_YAML + "names: [cat, dog, cat]\n"), [
        "classes.txt", "duplicate class names cat"]


def case_init_classes_txt_holding_yaml_without_a_list(t):
    return _init_classes(t, "classes.txt", "train: images\nnames:\n"), [
        "classes.txt: read as a data.yaml for its class names: no 'names' key"]


def case_init_classes_comma_separated_on_one_line(t):
    return _init_classes(t, "classes.txt", "cat,dog,bird\n"), [
        "classes.txt: line 1 'cat,dog,bird' holds a comma", "one class name a line", "is not split"]


def case_init_classes_comma_and_space_separated(t):
    return _init_classes(t, "classes.txt", "cat, dog, bird\n"), ["line 1 'cat, dog, bird' holds a comma"]


def case_init_classes_comma_on_a_later_line(t):
    return _init_classes(t, "classes.txt", "cat\ndog,bird\n"), ["line 2 'dog,bird' holds a comma"]


def case_init_classes_comma_separated_with_bom_and_crlf(t):
    return _init_classes(t, "obj.names", "\ufeffcat,dog\r\n".encode()), ["obj.names: line 1 'cat,dog' holds a comma"]


def case_init_classes_id_space_name(t):
    return _init_classes(t, "classes.txt", "0 cat\n1 dog\n2 bird\n"), [
        "line 1 '0 cat' starts with a class id", "the names alone", "(write 'cat')"]


def case_init_classes_id_colon_name(t):
    return _init_classes(t, "classes.txt", "0: cat\n1: dog\n"), ["line 1 '0: cat' starts with a class id"]


def case_init_classes_one_id_and_name(t):
    return _init_classes(t, "classes.txt", "0 cat\n"), ["'0 cat' starts with a class id"]


def case_init_classes_id_tab_name(t):
    return _init_classes(t, "classes.txt", "0\tcat\n1\tdog\n"), ["starts with a class id", "(write 'cat')"]


def case_init_classes_id_name_after_bom_and_blank_lines(t):
    return _init_classes(t, "classes.txt", "\ufeff\n\n3 cat\n4 dog\n".encode()), [
        "line 3 '3 cat' starts with a class id"]


def case_init_classes_semicolon_separated(t):
    return _init_classes(t, "classes.txt", "cat;dog;bird\n"), [
        "classes.txt", "line 1 'cat;dog;bird' holds a semicolon", "one class name a line"]


def case_init_classes_tab_separated(t):
    return _init_classes(t, "classes.txt", "cat\tdog\tbird\n"), ["line 1 'cat\\tdog\\tbird' holds a tab"]


def case_init_classes_bar_separated(t):
    return _init_classes(t, "classes.txt", "cat|dog|bird\n"), ["line 1 'cat|dog|bird' holds a '|'"]


def case_init_classes_semicolon_on_a_later_line(t):
    return _init_classes(t, "classes.txt", "cat\ndog;bird\n"), ["line 2 'dog;bird' holds a semicolon"]


def case_init_classes_yaml_list_in_a_txt(t):
    return _init_classes(t, "classes.txt", "- cat\n- dog\n- bird\n"), [
        "line 1 '- cat' is a YAML list item", "(write 'cat')", "or pass a data.yaml"]


def case_init_classes_darknet_obj_data(t):
    return _init_classes(t, "obj.data", "classes = 3\nnames = data/obj.names\n"), [
        "obj.data", "line 1 'classes = 3' is a darknet obj.data line", "(obj.names)"]


def case_init_classes_name_with_a_nul(t):
    return _init_classes(t, "classes.txt", "cat\x00\ndog\n"), ["holds the control character U+0000"]


def case_init_classes_json_list(t):
    return _init_classes(t, "classes.json", '["cat", "dog", "bird"]\n'), ["classes.json", "holds a comma"]


def case_init_classes_csv_with_a_header(t):
    return _init_classes(t, "classes.csv", "id,name\n0,cat\n1,dog\n"), ["line 1 'id,name' holds a comma"]


def case_prelabel_classes_semicolon_separated(t):
    return _prelabel(t, "cat;dog;bird\n"), ["holds a semicolon"]

def case_prelabel_classes_comma_separated(t):
    return _prelabel(t, "cat,dog,bird\n"), ["classes.txt: line 1 'cat,dog,bird' holds a comma"]


def case_prelabel_classes_id_and_name(t):
    return _prelabel(t, "0 cat\n1 dog\n2 bird\n"), ["'0 cat' starts with a class id"]


def case_prelabel_classes_data_yaml_without_names(t):
    return _prelabel(t, _write(t / "data.yaml", _DATA_YAML)), ["data.yaml", "no 'names' key"]


# -- issue 22, defect 8: a label whose image Ultralytics could not train on, through COCO and CVAT --


def _spoil_first_image(argv: list[str], data: bytes) -> str:
    """Replace the first image of batch 0 by ``data``; its relpath."""
    from detal.store import Store

    project = Path(argv[1])
    key = _keys(project)[0]
    with Store.open(project / "detal.db", readonly=True) as store:
        relpath = store.images_by_key()[key].relpath
    (project / relpath).write_bytes(data)
    return relpath


def case_coco_label_of_an_image_now_a_gif(t):
    argv = _coco(t)
    buf = io.BytesIO()
    Image.new("P", (40, 30)).save(buf, "GIF")
    relpath = _spoil_first_image(argv, buf.getvalue())
    return argv, ["instances.json", f"image {relpath}: a GIF image by its content"]


def case_coco_label_of_an_image_now_9_pixels_high(t):
    argv = _coco(t)
    buf = io.BytesIO()
    Image.new("RGB", (40, 9)).save(buf, "PNG")
    relpath = _spoil_first_image(argv, buf.getvalue())
    return argv, [f"image {relpath}: 40x9 pixels; Ultralytics would leave it out of training"]


def case_cvat_label_of_an_image_now_truncated(t):
    argv = _cvat(t)
    buf = io.BytesIO()
    Image.effect_noise((40, 30), 60).convert("RGB").save(buf, "PNG")
    relpath = _spoil_first_image(argv, buf.getvalue()[:-300])
    return argv, ["cvat.zip!obj_train_data/", f"image {relpath}: corrupt image"]


def case_cvat_label_of_an_image_opencv_cannot_decode(t):
    argv = _cvat(t)
    buf = io.BytesIO()
    Image.effect_noise((40, 30), 60).convert("RGB").save(buf, "BMP")
    relpath = _spoil_first_image(argv, buf.getvalue()[:2000])
    return argv, [f"image {relpath}: corrupt image, OpenCV cannot decode it"]


# -- issue 22, defect 11: label files beside the folder the labels are read from ------------------


def case_cvat_label_file_beside_obj_train_data(t):
    argv = _cvat(t)
    key = _keys(Path(argv[1]))[0]
    with zipfile.ZipFile(argv[2]) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if not n.endswith(f"{key}.txt")}
    _zip(Path(argv[2]), {**files, f"{key}.txt": LINE})
    return argv, [f"cvat.zip!{key}.txt: label file outside obj_*_data/", "move it into obj_*_data/"]


def case_cvat_label_file_in_another_folder(t):
    return _cvat(t, extra={"extra/stray.txt": LINE}), ["cvat.zip!extra/stray.txt: label file outside obj_*_data/"]

# -- issue 22, defect 6: one frame for sizes, the displayed one (EXIF orientation applied) ----------


def _rotated_coco(t: Path, tag: int, *, unturned: str = "all", nested: bool = False,
                  folder: bool = False) -> list[str]:
    """``import`` of a COCO file for batch 0 of a project of photos stored 48x30 with EXIF
    orientation ``tag`` (30x48 as displayed), giving the unturned size for ``unturned``
    (``all``, ``first`` or ``last`` image of the batch) and the displayed one for the others."""
    from test_image_frame import rotated_jpeg

    for i in range(10):
        rotated_jpeg(t / "photos" / (f"sub/ph{i}.jpg" if nested else f"ph{i}.jpg"), tag, shade=30 * i)
    _write(t / "classes.txt", "cat\ndog\nbird\n")
    init_project(t / "proj", t / "photos", t / "classes.txt",
                 config=load_config(None, ["initial_fraction=0.3", "max_labeled_fraction=0.42"]))
    names = batch_names(t / "proj", 0)
    wrong = {"all": set(names), "first": {names[0]}, "last": {names[-1]}}[unturned]
    images = [{"id": i, "file_name": n, "width": 48 if n in wrong else 30, "height": 30 if n in wrong else 48}
              for i, n in enumerate(names, start=1)]
    doc = {"images": images, "categories": [{"id": k, "name": n} for k, n in enumerate(NAMES, start=1)],
           "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 20, 10]}
                           for i in range(1, len(images) + 1)]}
    path = _write(t / ("ret/annotations/instances_default.json" if folder else "instances.json"), json.dumps(doc))
    return ["import", str(t / "proj"), str(t / "ret" if folder else path), "--format", "coco"]


def case_coco_rotated_photo_in_the_unturned_frame_tag_6(t):
    return _rotated_coco(t, 6), ["COCO gives its size as 48x30 but the image is 30x48 as displayed", "swapped"]


def case_coco_rotated_photo_in_the_unturned_frame_tag_8(t):
    return _rotated_coco(t, 8), ["48x30 but the image is 30x48 as displayed", "swapped"]


def case_coco_rotated_photo_in_the_unturned_frame_tag_5(t):
    return _rotated_coco(t, 5), ["48x30 but the image is 30x48 as displayed"]


def case_coco_rotated_photo_in_the_unturned_frame_tag_7(t):
    return _rotated_coco(t, 7), ["48x30 but the image is 30x48 as displayed"]


def case_coco_rotated_photo_only_the_first_unturned(t):
    return _rotated_coco(t, 6, unturned="first"), ["1 problem", "48x30 but the image is 30x48"]


def case_coco_rotated_photo_only_the_last_unturned(t):
    return _rotated_coco(t, 8, unturned="last"), ["1 problem", "48x30 but the image is 30x48"]


def case_coco_rotated_photo_nested_unturned(t):
    return _rotated_coco(t, 6, nested=True), ["sub__ph", "48x30 but the image is 30x48 as displayed"]


def case_coco_rotated_photo_unturned_in_a_coco_folder(t):
    return _rotated_coco(t, 8, folder=True), ["instances_default.json", "48x30 but the image is 30x48"]


# == issue 22 =====================================================================================
# -- defect 18: an --out that cannot be written is one line, before any work ----------------------
# As root, permission bits do not stop a write: a folder made immutable (chattr +i) does.


def _immutable(folder: Path) -> Path:
    """``folder`` (made if missing) that nobody, root included, may change (skips where chattr fails)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make a folder immutable here: {made.stderr.decode().strip()}")
    _IMMUTABLE.append(folder)
    return folder


def _reviewable(t: Path) -> Path:
    """A project whose cycle 1 is done: a batch with pre-labels to review."""
    project = make_project(t, n=20)
    label_cycle(project, 0, t)
    run_cycle(project, FakeAdapter(len(NAMES), seed=2))
    return project


def _review(t: Path, out: Path) -> list[str]:
    return ["review", str(_reviewable(t)), "--out", str(out)]


def case_score_out_in_an_immutable_folder(t):
    ro = _immutable(t / "ro")
    return _score(t, ro / "scores.csv"), ["ro/scores.csv", "cannot write in", "Operation not permitted"]


def case_score_out_in_a_missing_folder_of_an_immutable_one(t):
    ro = _immutable(t / "ro")
    return _score(t, ro / "new" / "scores.csv"), ["ro/new/scores.csv", "cannot write in", str(ro)]


def case_score_embeddings_in_an_immutable_folder(t):
    ro = _immutable(t / "ro")
    argv = _score(t, t / "scores.csv") + ["--embeddings", str(ro / "emb.npz")]
    return argv, ["ro/emb.npz", "cannot write in"]


def case_score_embeddings_under_a_file(t):
    _write(t / "afile", "x")
    argv = _score(t, t / "scores.csv") + ["--embeddings", str(t / "afile" / "emb.npz")]
    return argv, ["afile/emb.npz", "is under", "which is a file, not a folder"]


def case_prelabel_out_under_a_file(t):
    _write(t / "afile", "x")
    return _prelabel(t, "cat\ndog\nbird\n", "--out", str(t / "afile" / "out")), [
        "afile/out", "is under", "which is a file, not a folder"]


def case_prelabel_out_is_a_file(t):
    _write(t / "afile", "x")
    return _prelabel(t, "cat\ndog\nbird\n", "--out", str(t / "afile")), ["afile", "is a file, not a folder"]


def case_prelabel_out_in_an_immutable_folder(t):
    ro = _immutable(t / "ro")
    return _prelabel(t, "cat\ndog\nbird\n", "--out", str(ro / "out")), [
        "ro/out", "cannot write in", "Operation not permitted"]


def case_prelabel_out_is_an_immutable_folder(t):
    ro = _immutable(t / "ro")
    return _prelabel(t, "cat\ndog\nbird\n", "--out", str(ro)), ["ro", "cannot write in", str(ro)]


def case_review_out_under_a_file(t):
    _write(t / "afile", "x")
    return _review(t, t / "afile" / "page"), ["afile/page", "is under", "which is a file, not a folder"]


def case_review_out_in_an_immutable_folder(t):
    ro = _immutable(t / "ro")
    return _review(t, ro / "page"), ["ro/page", "cannot write in", "Operation not permitted"]


def case_review_out_is_an_immutable_review_folder(t):
    project = _reviewable(t)
    assert main(["review", str(project), "--out", str(t / "page")]) == 0
    _immutable(t / "page")
    return ["review", str(project), "--out", str(t / "page")], ["page", "cannot write in"]


def case_review_default_out_in_an_immutable_cycle_folder(t):
    project = _reviewable(t)
    _immutable(project / "cycles" / "1")
    return ["review", str(project)], ["cycles/1/review", "cannot write in"]


def case_digits_out_in_an_immutable_folder(t):
    ro = _immutable(t / "ro")
    return _digits(ro / "d"), ["ro/d", "cannot write in", "Operation not permitted"]


# -- defect 19: messages that read right -----------------------------------------------------------


def _yolo_return(t: Path, line: str) -> list[str]:
    """``import PROJECT returned/`` with ``line`` as the label of every image of batch 0."""
    project = _project(t)
    for key in _keys(project):
        _write(t / "returned" / f"{key}.txt", line + "\n")
    return ["import", str(project), str(t / "returned")]


def case_yolo_width_a_hair_over_1(t):
    return _yolo_return(t, "0 0.5 0.5 1.0000009 0.2"), ["w=1.0000009 outside [0, 1]"]


def case_yolo_centre_a_hair_over_1(t):
    return _yolo_return(t, "0 1.0000004 0.5 0.2 0.2"), ["cx=1.0000004 outside [0, 1]"]


def case_yolo_box_too_small_for_6_decimals(t):
    return _yolo_return(t, "0 0.5 0.5 0.0000001 0.0000002"), [
        "box too small to write: w=1e-07 h=2e-07", "0.000001"]


def case_coco_box_too_small_for_6_decimals(t):
    def tiny(doc):
        doc["annotations"][0]["bbox"] = [1, 1, 0.000001, 0.000001]

    return _coco(t, tiny), ["instances.json", "box too small to write: w=", "0.000001 a YOLO line can hold"]


def case_coco_box_a_hair_wider_than_the_image(t):
    def wide(doc):
        width = doc["images"][0]["width"]
        doc["annotations"][0]["bbox"] = [0, 1, width * 1.0000009, 4]

    return _coco(t, wide), ["instances.json", "w=1.0000009", "outside [0, 1]"]


def case_digits_imgsz_100000(t):
    return ["data", "digits", "--out", str(t / "d"), "--pool", "2", "--val", "1", "--imgsz", "100000"], [
        "--imgsz must be from 32 to 4096 pixels, got 100000"]


def case_digits_imgsz_4097(t):
    return ["data", "digits", "--out", str(t / "d"), "--pool", "2", "--val", "1", "--imgsz", "4097"], [
        "--imgsz must be from 32 to 4096"]


def case_config_bool_written_yes(t):
    return _config(t, "normalize_entropy: yes\n"), ["c.yaml", "line 1", "'yes' is not true or false"]


def case_config_bool_written_off(t):
    return _config(t, "warm_start: off\n"), ["c.yaml", "'off' is not true or false", "would read it as False"]


def case_config_bool_override_written_no(t):
    return ["config", "--set", "normalize_entropy=no"], ["--set normalize_entropy", "'no' is not true or false"]


def case_config_float_with_an_underscore(t):
    return _config(t, "empty_image_score: 1_000.5\n"), [
        "c.yaml", "'1_000.5' is not a plain decimal number", "1000.5"]


def case_config_float_in_base_60(t):
    return _config(t, "empty_image_score: 1:30.5\n"), ["c.yaml", "'1:30.5' is not a plain decimal number", "90.5"]


def case_config_yes_in_train_args(t):
    return _config(t, "train_args: {cos_lr: yes}\n"), ["c.yaml", "'yes' is not true or false"]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_hostile_input(case, tmp_path, capsys):
    argv, expected = case(tmp_path)
    capsys.readouterr()
    before = snapshot(tmp_path)
    start = time.perf_counter()
    assert main(argv) == 1
    elapsed = time.perf_counter() - start
    _out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:2000]
    assert lines[0].startswith("detal: error: ")
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0][:3000]!r}"
    assert len(lines[0]) < 120_000  # at most 200 problems are listed
    assert snapshot(tmp_path) == before
    assert elapsed < 30  # the alias bomb must not expand (it would run for minutes)


def test_there_are_enough_hostile_cases():
    assert len(CASES) >= 60
    groups = {"coco", "cvat", "config", "cycle", "init", "prelabel", "score", "digits", "yolo", "review"}
    assert {c.__name__.split("_")[1] for c in CASES} == groups


# -- controls: the builders make valid input, so each case fails for its own reason -----------


@pytest.mark.parametrize("build", [_coco, _cvat], ids=["coco", "cvat"])
def test_unspoiled_returns_import(build, tmp_path, capsys):
    argv = build(tmp_path)
    assert main(argv) == 0, capsys.readouterr().err
    assert "imported 2 labels" in capsys.readouterr().out


def test_unspoiled_config_prelabel_and_digits_run(tmp_path, capsys):
    assert main(_config(tmp_path, "seed: 4294967295\nempty_image_score: 2.5\ntrain_args: {lr0: 0.01}\n")) == 0
    assert "seed: 4294967295" in capsys.readouterr().out
    assert main(_prelabel(tmp_path, "cat\ndog\nbird\n", "--set", "prelabel_conf=1", "--set", "score_conf=1")) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "yolo" / "labels").iterdir()) == [
        "im000.txt", "im001.txt", "im002.txt"]
    assert main(_digits(tmp_path / "d")) == 0


def test_alias_bomb_is_answered_at_once(tmp_path, capsys):
    path = _write(tmp_path / "bomb.yaml", _bomb())
    assert path.stat().st_size < 600
    start = time.perf_counter()
    assert main(["config", "--config", str(path)]) == 1
    assert time.perf_counter() - start < 2.0
    assert "aliases" in capsys.readouterr().err


def test_anchor_without_alias_is_fine(tmp_path):
    assert load_config(_write(tmp_path / "c.yaml", "seed: &s 3\n")).seed == 3


# -- group 12: a BOM is not part of a class name ----------------------------------------------


@pytest.mark.parametrize(
    "text, names",
    [
        ("\ufeffcat\ndog\n", ["cat", "dog"]),
        ("\ufeffcat\r\ndog\r\n", ["cat", "dog"]),
        ("\ufeff\ncat\n", ["cat"]),
        ("cat\n\ufeffdog\n", ["cat", "\ufeffdog"]),  # only a leading BOM is a BOM
    ],
    ids=["lf", "crlf", "bom-then-blank", "inner"],
)
def test_bom_is_dropped_from_the_first_class_name(tmp_path, text, names):
    path = _write(tmp_path / "classes.txt", text.encode("utf-8"))
    assert parse_class_names(text) == names
    assert read_classes(path) == names


def test_bom_classes_then_cvat_import_of_the_same_classes(tmp_path, capsys):
    argv = _cvat(tmp_path, "cat\ndog\nbird\n", labels={0: "1 0.5 0.5 0.2 0.2\n"},
                 classes="\ufeffcat\ndog\nbird\n")
    project = Path(argv[1])
    assert main(argv) == 0, capsys.readouterr().err
    key = _keys(project)[0]
    assert (project / "labels" / "images" / f"{key}.txt").read_text().startswith("1 0.500000")
    with zipfile.ZipFile(project / "cycles" / "0" / "batch-0.zip") as zf:
        assert zf.read("classes.txt").decode() == "cat\ndog\nbird\n"


def test_bom_classes_for_prelabel(tmp_path):
    assert main(_prelabel(tmp_path, "\ufeffcat\ndog\nbird\n")) == 0
    data = yaml.safe_load((tmp_path / "out" / "yolo" / "data.yaml").read_text(encoding="utf-8"))
    assert data["names"] == {0: "cat", 1: "dog", 2: "bird"}


# -- the readers' API: what import will call -------------------------------------------------------


def _coco_file(tmp_path: Path, doc: dict) -> Path:
    return _write(tmp_path / "instances.json", json.dumps(doc))


def _simple_coco(width=40, height=30, name="a.png") -> dict:
    return {
        "images": [{"id": 1, "file_name": f"images/{name}", "width": width, "height": height}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [4, 3, 8, 6]}],
        "categories": [{"id": 5, "name": "dog"}],
    }


_BOX = '<box label="dog" occluded="0" xtl="4.00" ytl="3.00" xbr="12.00" ybr="9.00" z_order="0"/>'


def _cvat_xml(shapes: str, *, width: str = "40", twice: bool = False) -> str:
    image = f'<image id="0" name="images/a.png" width="{width}" height="30">{shapes}</image>'
    return f'<?xml version="1.0"?><annotations><version>1.1</version>{image * (2 if twice else 1)}</annotations>'


READER_CASES = [
    # (id, format, files or builder, kwargs, expected words)
    ("yolo classes.txt repeats a name", "yolo",
     {"classes.txt": "cat\ndog\ncat\n", "labels/a.txt": LINE}, {}, ["classes.txt", "duplicate class names cat"]),
    ("yolo classes.txt and data.yaml disagree", "yolo",
     {"classes.txt": "dog\ncat\nbird\n", "data.yaml": "names: [cat, dog, bird]\n", "labels/a.txt": LINE}, {},
     ["data.yaml", "disagrees with", "classes.txt", "class id 0 is 'cat' here but 'dog'"]),
    ("yolo two classes.txt disagree", "yolo",
     {"classes.txt": "cat\ndog\n", "labels/classes.txt": "dog\ncat\n", "labels/a.txt": LINE}, {},
     ["labels/classes.txt", "disagrees", "ambiguous"]),
    ("yolo data.yaml nc disagrees", "yolo",
     {"data.yaml": "nc: 4\nnames: [cat, dog, bird]\n", "labels/a.txt": LINE}, {}, ["data.yaml", "nc is 4"]),
    ("yolo data.yaml alias bomb", "yolo",
     {"data.yaml": _bomb(), "labels/a.txt": LINE}, {}, ["data.yaml", "line 3", "aliases"]),
    ("yolo data.yaml names nfc and nfd", "yolo",
     {"data.yaml": f"names: [{NFC}, {NFD}]\n", "labels/a.txt": LINE}, {}, ["differ only in Unicode"]),
    ("yolo zip label over 4 MiB", "yolo",
     {"labels/a.txt": BIG_LABEL, "labels/b.txt": LINE}, {}, ["labels/a.txt", "file too large"]),
    ("yolo folder label over 4 MiB", "yolo-folder",
     {"labels/a.txt": BIG_LABEL, "labels/b.txt": LINE}, {}, ["labels/a.txt", "file too large"]),
    ("yolo 250 problems list 200", "yolo",
     {"labels/a.txt": "9 0.5 0.5 0.2 0.2\n" * 250}, {}, ["250 problems", "; ... and 50 more"]),
    ("yolo sixth field", "yolo",
     {"labels/a.txt": "0 0.5 0.5 0.2 0.2 x\n"}, {}, ["a.txt:1", "sixth field (confidence) 'x'"]),
    ("yolo symlinked folder", "yolo-folder-link", {"labels/a.txt": LINE}, {}, ["symbolic link not allowed"]),
    ("yolo label is a fifo", "yolo-folder-fifo", {"labels/a.txt": LINE}, {}, ["b.txt", "not a regular file"]),
    ("yolo confidence column when not allowed", "yolo",
     {"labels/a.txt": "0 0.5 0.5 0.2 0.2 0.9\n"}, {"allow_confidence": False}, ["a.txt:1", "expected 5 fields"]),
    ("coco width disagrees with the image", "coco",
     _simple_coco(), {"sizes": {"a.png": (41, 30)}},
     ["instances.json", "image 'images/a.png'", "as 40x30 but the image is 41x30"]),
    ("coco height disagrees, sizes by key", "coco",
     _simple_coco(), {"sizes": {"a": (40, 60)}}, ["image 'images/a.png'", "40x30 but the image is 40x60"]),
    ("coco non-integer width", "coco", _simple_coco(width=40.5), {}, ["width/height must be positive whole"]),
    ("coco no annotations", "coco",
     {**_simple_coco(), "annotations": []}, {}, ["no annotations at all", "1 listed image(s)"]),
    ("coco over the size cap", "coco-capped", _simple_coco(), {}, ["COCO file too large", "limit is"]),
    # CVAT for images 1.1 XML (detal.export.cvat_xml)
    ("cvat xml polygon is not a box", "cvat-xml", _cvat_xml('<polygon label="dog" points="1,1;5,5;1,5"/>'), {},
     ["annotations.xml", "image 'images/a.png': polygon 'dog' is not a box"]),
    ("cvat xml points are not a box", "cvat-xml", _cvat_xml('<points label="cat" points="1,1"/>'), {},
     ["points 'cat' is not a box"]),
    ("cvat xml mask is not a box", "cvat-xml", _cvat_xml('<mask label="cat" rle="1,2" left="0" top="0" width="2" '
                                                         'height="1"/>'), {}, ["mask 'cat' is not a box"]),
    ("cvat xml rotated box", "cvat-xml", _cvat_xml(_BOX.replace('z_order="0"', 'rotation="30.0" z_order="0"')), {},
     ["box 'dog': rotated by 30.0 degrees"]),
    ("cvat xml label no project class", "cvat-xml", _cvat_xml(_BOX.replace('"dog"', '"horse"')), {},
     ["box 'horse': label is not a project class (cat, dog, bird)"]),
    ("cvat xml box outside the image", "cvat-xml", _cvat_xml(_BOX.replace('xbr="12.00"', 'xbr="80.00"')), {},
     ["box 'dog': box [4, 3, 80, 9]"]),
    ("cvat xml corner not a number", "cvat-xml", _cvat_xml(_BOX.replace('ytl="3.00"', 'ytl="nan"')), {},
     ["xtl, ytl, xbr, ybr must be finite numbers"]),
    ("cvat xml width disagrees with the image", "cvat-xml", _cvat_xml(_BOX), {"sizes": {"a.png": (41, 30)}},
     ["image 'images/a.png': CVAT gives its size as 40x30 but the image is 41x30"]),
    ("cvat xml size of the unturned photo", "cvat-xml", _cvat_xml(_BOX), {"sizes": {"a": (30, 40)}},
     ["width and height are swapped"]),
    ("cvat xml non-integer width", "cvat-xml", _cvat_xml(_BOX, width="40.5"), {}, ["width/height must be positive"]),
    ("cvat xml image listed twice", "cvat-xml", _cvat_xml(_BOX, twice=True), {}, ["'images/a.png' listed twice"]),
    ("cvat xml video tracks", "cvat-xml", _cvat_xml(_BOX).replace("</annotations>", '<track id="0" label="dog"/>'
                                                                   "</annotations>"), {}, ["<track> elements"]),
    ("cvat xml no boxes at all", "cvat-xml", _cvat_xml(""), {}, ["no boxes at all", "1 listed image(s)"]),
    ("cvat xml entity bomb", "cvat-xml-raises",
     ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]><annotations>&y;'
      '</annotations>'), {}, ["annotations.xml", "DOCTYPE or entities is not read"]),
    ("cvat xml not xml", "cvat-xml-raises", "<annotations><image", {}, ["annotations.xml", "not valid XML"]),
    ("cvat xml another root", "cvat-xml-raises", "<dataset/>", {}, ["root is <dataset>"]),
    ("cvat xml zip without annotations.xml", "cvat-xml-zip", {"other.xml": _cvat_xml(_BOX)}, {},
     ["expected one annotations.xml in the zip, found 0"]),
]


def _reader_input(tmp_path: Path, kind: str, files, monkeypatch) -> tuple[Path, str]:
    if kind == "coco":
        return _coco_file(tmp_path, files), "coco"
    if kind == "coco-capped":
        monkeypatch.setattr("detal.export.coco.MAX_COCO_BYTES", 100)
        return _coco_file(tmp_path, files), "coco"
    if kind in ("cvat-xml", "cvat-xml-raises"):
        return _write(tmp_path / "annotations.xml", files), "cvat-xml"
    if kind == "cvat-xml-zip":
        return _zip(tmp_path / "task.zip", files), "cvat-xml"
    if kind.startswith("yolo-folder"):
        root = tmp_path / "ret"
        for name, text in files.items():
            _write(root / name, text)
        if kind == "yolo-folder-link":
            (root / "more").symlink_to(root / "labels")
        if kind == "yolo-folder-fifo":
            os.mkfifo(root / "labels" / "b.txt")
        return root, "yolo"
    return _zip(tmp_path / "ret.zip", files), kind


@pytest.mark.parametrize("kind, files, kwargs, expected", [c[1:] for c in READER_CASES],
                         ids=[c[0] for c in READER_CASES])
def test_reader_refuses(tmp_path, monkeypatch, kind, files, kwargs, expected):
    path, fmt = _reader_input(tmp_path, kind, files, monkeypatch)
    with pytest.raises(DataError) as info:
        read_returned_labels(path, fmt, NAMES, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, f"{text!r} not in {message[:2000]!r}"
    if kind not in ("coco-capped", "cvat-xml-raises", "cvat-xml-zip"):  # what cannot be read at all raises
        assert read_returned(path, fmt, NAMES, **kwargs).problems


@pytest.mark.parametrize("names_file", ["classes.txt", "data.yaml", "labels/classes.txt"])
def test_yolo_zip_with_classes_in_another_order_is_mapped_by_name(tmp_path, names_file):
    order = ["bird", "cat", "dog"]
    text = yaml.safe_dump({"names": order}) if names_file.endswith("yaml") else "\ufeff" + "\n".join(order)
    path = _zip(tmp_path / "ret.zip", {names_file: text, "labels/a.txt": "0 0.5 0.5 0.2 0.2\n",
                                       "labels/b.txt": "2 0.5 0.5 0.2 0.2 0.9\n", "__MACOSX/labels/._a.txt": "x",
                                       "labels/.hidden.txt": "junk"})
    assert read_returned_labels(path, "yolo", NAMES) == {
        "a": "2 0.500000 0.500000 0.200000 0.200000\n",  # bird
        "b": "1 0.500000 0.500000 0.200000 0.200000\n",  # dog
    }


def test_coco_sizes_that_agree_and_allowed_empty_files(tmp_path):
    path = _coco_file(tmp_path, _simple_coco())
    text = "1 0.200000 0.200000 0.200000 0.200000\n"
    # without the project's pool, an image is keyed by its file_name as written, folder and all
    assert read_returned_labels(path, "coco", NAMES, sizes={"a.png": (40, 30)}) == {"images/a.png": text}
    assert read_returned_labels(path, "coco", NAMES, sizes={"a": (40, 30), "other": (1, 1)}) == {"images/a.png": text}
    empty = _coco_file(tmp_path, {**_simple_coco(), "annotations": []})
    assert read_returned_labels(empty, "coco", NAMES, allow_no_annotations=True) == {"images/a.png": ""}


def test_read_returned_collects_sources_and_problems(tmp_path):
    path = _zip(tmp_path / "ret.zip", {"labels/a.txt": LINE, "labels/b.txt": "7 0.5 0.5 0.2 0.2\n"})
    returned = read_returned(path, "yolo", NAMES)
    assert returned.labels["a"] == "0 0.500000 0.500000 0.200000 0.200000\n"
    assert returned.sources["a"] == f"{path}!labels/a.txt"
    assert [str(p) for p in returned.problems] == [f"{path}!labels/b.txt:1: class id 7 out of range [0, 2]"]
    coco = read_returned(_coco_file(tmp_path, _simple_coco()), "coco", NAMES)
    assert coco.sources == {"images/a.png": f"{tmp_path / 'instances.json'}: image images/a.png"}
    assert not coco.problems


# -- what `detal import` gains from the reader --------------------------------------------------


def test_import_yolo_zip_with_reordered_classes_txt(tmp_path, capsys):
    project = _project(tmp_path)
    keys = _keys(project)
    files = {"classes.txt": "dog\ncat\nbird\n", **{f"labels/{k}.txt": LINE for k in keys}}
    assert main(["import", str(project), str(_zip(tmp_path / "ret.zip", files))]) == 0
    label = next((project / "labels").rglob(keys[0].split("__")[-1] + ".txt"))
    assert label.read_text().split()[0] == "1"  # dog


def test_import_coco_with_wrong_image_size(tmp_path, capsys):
    def spoil(d):
        d["images"][0]["width"] *= 2
    argv = _coco(tmp_path, spoil)
    before = snapshot(tmp_path)
    assert main(argv) == 1
    assert "but the image is" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
