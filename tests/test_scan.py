"""The init scan (detal/project/scan.py): its fast paths give what the slow ones gave."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from detal.errors import DataError
from detal.project.scan import control_character, walk_images


def test_control_characters_are_category_cc():
    for code in range(0x3000):
        ch = chr(code)
        assert (control_character(f"a{ch}b.png") is not None) == (unicodedata.category(ch) == "Cc"), hex(code)
    assert control_character("a\nb") == "a newline"
    assert control_character("a\x85b") == "the control character U+0085"


def test_walk_skips_links_that_lead_nowhere(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    for rel in ("b.png", "sub/a.png", "sub/c.jpg", ".hidden.png"):
        (root / rel).write_bytes(b"x")
    (root / "dangling.png").symlink_to(tmp_path / "nothing.png")
    (root / "loop.png").symlink_to(root / "loop.png")
    (root / "linked.png").symlink_to(root / "b.png")
    (root / "sub.png").mkdir()  # a folder with an image suffix is a folder
    (root / "sub.png" / "d.png").write_bytes(b"x")
    assert list(walk_images(root)) == ["b.png", "linked.png", "sub/a.png", "sub/c.jpg", "sub.png/d.png"]
    dead: list[str] = []
    assert list(walk_images(root, dead_links=dead)) == list(walk_images(root))
    assert dead == ["dangling.png", "loop.png"]


def test_init_names_the_image_links_it_skipped(tmp_path, capsys):
    from detal.cli import main

    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (12, 12)).save(root / f"im{i}.png")
    (root / "gone.png").symlink_to(tmp_path / "moved-away.png")
    (root / "notes.txt").symlink_to(tmp_path / "nothing.txt")  # not named like an image: not an image link
    (tmp_path / "classes.txt").write_text("x\n")
    assert main(["init", str(tmp_path / "p"), "--images", str(root), "--classes", str(tmp_path / "classes.txt")]) == 0
    out, err = capsys.readouterr()
    assert "created" in out and "4 images" in out
    assert f"warning: 1 image link(s) lead nowhere (target gone or a loop) and were skipped: {root / 'gone.png'}" in err
    assert "notes.txt" not in err


def test_a_key_clash_names_the_file_found_again(tmp_path):
    from detal.project import init_project

    root = tmp_path / "imgs"
    (root / "a" / "b").mkdir(parents=True)
    for rel in ("a/b/c.png", "a/b__c.png", "z.png"):
        Image.new("RGB", (12, 12)).save(root / rel)
    (tmp_path / "classes.txt").write_text("x\n")
    with pytest.raises(DataError, match=r"'a/b/c.png' and 'a/b__c.png' get the same bundle name 'a__b__c'"):
        init_project(tmp_path / "p", root, tmp_path / "classes.txt")
    assert not (tmp_path / "p").exists()
    assert Path(root / "z.png").is_file()
