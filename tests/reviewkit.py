"""Helpers for the review page tests: a project with a cycle, the page's cards, a browser."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

from projectkit import NAMES, label_cycle, make_project

from detal.fake import FakeAdapter
from detal.project import run_cycle

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def project_with_cycle(tmp: Path, n: int = 40, formats=("yolo",), cycles: int = 1,
                       line: str = "0 0.5 0.5 0.2 0.2") -> Path:
    """A project whose batches up to ``cycles`` ran with the FakeAdapter (the last one is out)."""
    project = make_project(tmp, n=n, val=4)
    for k in range(cycles):
        label_cycle(project, k, tmp, line)
        run_cycle(project, FakeAdapter(len(NAMES), seed=2), formats=list(formats))
    return project


class Cards(HTMLParser):
    """Collects every ``article.card`` with its attributes and the boxes inside it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cards: list[dict] = []
        self.checks: list[dict] = []
        self.inputs: dict[str, dict] = {}
        self._card: dict | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: ("" if v is None else v) for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "article" and "card" in classes:
            self._card = {**a, "boxes": [], "imgs": [], "name_text": ""}
            self.cards.append(self._card)
        elif self._card is not None and tag == "div" and "box" in classes:
            self._card["boxes"].append(a)
        elif self._card is not None and tag == "img":
            self._card["imgs"].append(a)
        elif self._card is not None and tag == "div" and "name" in classes:
            self._card["name_title"] = a.get("title")
            self._text = []
        if tag == "input":
            if "cls" in classes:
                self.checks.append(a)
            if "id" in a:
                self.inputs[a["id"]] = a

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._text is not None and self._card is not None:
            self._card["name_text"] = "".join(self._text)
            self._text = None
        if tag == "article":
            self._card = None


def parse_cards(text: str) -> Cards:
    parser = Cards()
    parser.feed(text)
    parser.close()
    return parser


def find_browser() -> str | None:
    """A Chromium-family browser on PATH (Debian: chromium-headless-shell or chromium)."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None
