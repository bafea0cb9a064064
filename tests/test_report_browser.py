"""The bake-off report as a person sees it: headless Chromium (offline) loads it, screenshots it, and its DOM
holds the verdict, the parity table, the charts as SVG and one row per backend."""

from __future__ import annotations

import pytest
from browser import parse_html, png_distinct_rows, png_size, render
from report_sample import sample_result

from unified_ft.report import write_report


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return render(write_report(sample_result(), out), out)


def test_screenshot_is_a_real_page(rendered):
    shot = rendered.screenshot
    assert png_size(shot) == (1280, 2400)
    assert shot.stat().st_size > 60_000  # a blank 1280x2400 page compresses to a few KB
    assert png_distinct_rows(shot) > 100


def test_screenshot_shows_the_verdict_and_the_charts_colours(rendered):
    Image = pytest.importorskip("PIL.Image")  # pillow comes with matplotlib (the report extra)
    image = Image.open(rendered.screenshot).convert("RGB")
    top = image.crop((0, 0, 1280, 400)).getcolors(1 << 20)
    assert any(_near(colour, (0xB4, 0x23, 0x18)) and n > 500 for n, colour in top), "no red verdict at the top"
    page = {colour for _, colour in image.getcolors(1 << 22)}
    for backend_colour in ((0x3B, 0x6F, 0xD4), (0xE0, 0x7B, 0x39)):  # trl's and llamafactory's lines and bars
        assert any(_near(c, backend_colour) for c in page), backend_colour


def _near(colour: tuple[int, int, int], target: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, target, strict=True))


def test_dom_has_the_parity_table_the_charts_and_one_row_per_backend(rendered):
    doc = parse_html(rendered.dom)
    assert "Not like-for-like" in doc.find(id="verdict").all_text()
    assert len(doc.find("table", id="parity").find_all("tr", cls="parity-row")) == 9
    rows = doc.find("table", id="backends").find_all("tr", cls="backend-row")
    assert [r.attrs["data-backend"] for r in rows] == ["trl", "llamafactory", "swift"]
    for chart in ("chart-loss", "chart-throughput", "chart-memory", "chart-time"):
        figure = doc.find("figure", id=chart)
        assert figure.find("svg").find_all("path"), chart
    assert not doc.find_all("script")  # the hostile strings stayed text: shown, never run
    assert "swift exited with 1 <script>alert('pwned')</script>" in rows[2].all_text()
