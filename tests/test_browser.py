"""The generated page in a real browser: Debian's headless Chromium, driven by Playwright."""

import os
import shutil

import pytest

from tfperf.render import html
from tfperf.results.store import load_run

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI must install Debian's chromium)")
        pytest.skip("chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def test_every_chart_renders_without_console_errors(browser, fixture_run, tmp_path):
    path, charts, _ = html.build(load_run(fixture_run), workers=1)
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # the first screen the answer must fit
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"network request {r.url}") if not r.url.startswith(("file:", "data:", "blob:")) else None)
    page.goto(path.as_uri())
    page.wait_for_function(f"document.querySelectorAll('.chart .main-svg').length >= {charts}", timeout=20000)
    rendered = page.evaluate("Array.from(document.querySelectorAll('.chart > div')).map(d => "
                             "d.querySelectorAll('.main-svg').length > 0 && d.querySelectorAll('.bars path, .point path, .points path').length > 0)")
    assert len(rendered) == charts and all(rendered), rendered
    assert page.evaluate("window.TFPERF_CHARTS") == charts
    # the page opens with its answer (after the title): every scenario's verdict and top changes on the first screen
    assert page.evaluate("document.querySelector('h1').nextElementSibling.id") == "answer"
    assert page.viewport_size == {"width": 1280, "height": 900}
    bottoms = page.evaluate("Array.from(document.querySelectorAll('#answer .answer')).map(a => "
                            "a.getBoundingClientRect().bottom)")
    assert bottoms and max(bottoms) <= 900, bottoms
    # then the findings, each a non-empty sentence
    assert page.evaluate("document.querySelectorAll('#findings li').length") >= 1
    assert all(t.strip() for t in page.evaluate("Array.from(document.querySelectorAll('#findings li')).map(li => "
                                                "li.textContent)"))
    # a diagnosis from the traces (light/naive's steps wait for its sequential map), with a measured knob
    diagnosed = page.evaluate("Array.from(document.querySelectorAll('#diagnosis li')).map(li => li.textContent)")
    assert any(d.startswith("light/naive:") and "sequential map" in d and "measured in this run" in d
               for d in diagnosed), diagnosed
    assert errors == []
    page.screenshot(path=str(os.environ.get("TFPERF_SCREENSHOT") or tmp_path / "report.png"), full_page=False)
