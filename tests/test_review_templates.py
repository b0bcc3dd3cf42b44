"""The review page's templates: package data, found by importlib.resources, inlined in the page."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from detal.labels import YoloBox
from detal.review import CyclePoint, ReviewImage, ReviewPage, render_page
from detal.review.render import TEMPLATES, template_text


def _page() -> ReviewPage:
    image = ReviewImage(0, "im0.png", "images/im0.png", 40, 20, 0.5, None,
                        (YoloBox(0, 0.5, 0.5, 0.2, 0.2, 0.5),), "thumbs/0.jpg")
    return ReviewPage("/p/proj", 1, ("cat", "dog"), 100, 10, 5, 0.4, (CyclePoint(1, 10, 0.3),),
                      (3, 2), (image,), "pre-labels")


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_is_package_data(name):
    resource = files("detal.review").joinpath("templates", name)
    assert resource.is_file()
    text = resource.read_text(encoding="utf-8")
    assert text.strip() and text == template_text(name)


def test_unknown_template_is_refused():
    with pytest.raises(ValueError, match="unknown review template 'page.svg'"):
        template_text("page.svg")


def test_page_inlines_the_style_sheet_and_the_script():
    html = render_page(_page())
    (style,) = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    (script,) = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert style.startswith("\n" + template_text("page.css"))
    assert script == "\n" + template_text("page.js")
    assert not re.search(r"<link|<script[^>]+src=|@import|url\(|https?://", html)
    assert "$" not in html.replace(template_text("page.js"), "")  # every placeholder filled
