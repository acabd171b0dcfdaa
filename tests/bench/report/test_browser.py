"""report.html in a real browser: figures load, tables show, nothing is fetched, nothing overflows.

Why a browser: string checks on the HTML (tests/bench/report/test_report.py) cannot tell whether an
embedded PNG decodes, whether a wide table pushes the page sideways on a laptop, or
whether the page logs errors. Headless Chromium (tests/support/browser.py) opens the file://
report at laptop width and at 800 px and measures what a reader would see; full-page
screenshots land in test-output/screenshots/ for a person to look at.

Two reports: one from a synthetic run (no servers, quick) and one from a real, small
``bench run greene-linserv`` (slow).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.config import parse_config
from bench.console import Console
from bench.report.write import report
from tests.support.browser import (
    LAPTOP_VIEWPORT,
    browser_or_skip,
    chromium_path,
    screenshot_dir,
    watch,
)
from tests.support.synthetic_runs import write_flagged_run, write_synthetic_run

NARROW_VIEWPORT = {"width": 800, "height": 900}
CEILING = {"engine": "fast", "rps_by_concurrency": {"1": 2000.0, "64": 40000.0}}
MIN_FONT_PX = 12.0  # smallest computed font size a table cell may have and stay readable

# What the page shows, measured in the browser (layout sizes in CSS pixels).
_MEASURE = """() => {
  const rect = el => el.getBoundingClientRect();
  const tables = [...document.querySelectorAll('table')].map(t => {
    const box = t.closest('.table-wrap') || t;
    return {width: rect(t).width, height: rect(t).height, boxRight: rect(box).right,
            rows: t.rows.length, hidden: getComputedStyle(t).visibility !== 'visible',
            font: Math.min(...[...t.querySelectorAll('td,th')].map(c => parseFloat(getComputedStyle(c).fontSize)))};
  });
  const images = [...document.images].map(i => ({alt: i.alt, complete: i.complete, natural: i.naturalWidth,
      width: rect(i).width, right: rect(i).right, container: rect(i.parentElement).width}));
  const count = document.getElementById('figure-count');
  const anchors = [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1));
  return {scrollWidth: document.scrollingElement.scrollWidth, viewport: window.innerWidth,
          figures: document.querySelectorAll('figure').length, figureCount: count ? Number(count.textContent) : null,
          indexEntries: document.querySelectorAll('nav.index ol li').length,
          missingAnchors: anchors.filter(id => !document.getElementById(id)), tables, images};
}"""


def _config(root: Path):
    return parse_config('[paths]\nresults_dir = "results"\nreports_dir = "reports"\n', root)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with browser_or_skip() as launched:
        yield launched


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory) -> Path:
    """reports/<id>/ from a synthetic run (all four targets, two modes, the study overlay)."""
    config = _config(tmp_path_factory.mktemp("browser-report"))
    write_synthetic_run(config.results_dir, "synthetic", ns=(1, 4, 8), trials=2, ceiling=CEILING)
    assert report(config, runs=["synthetic"], study_overlay=True, console=Console(quiet=True)) == 0
    return config.reports_dir / "synthetic"


def check_report_page(browser: Any, report_dir: Path, viewport: dict[str, int], shot: str) -> dict[str, Any]:
    """Open report.html at ``viewport``, screenshot it, assert what a reader needs; return the measurements."""
    html = report_dir / "report.html"
    pngs = sorted((report_dir / "figures").glob("*.png"))
    page = browser.new_page(viewport=viewport)
    try:
        log = watch(page)
        page.goto(html.as_uri(), wait_until="load")
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=15_000)
        page.screenshot(path=str(screenshot_dir() / shot), full_page=True)
        facts = page.evaluate(_MEASURE)
        visible = [page.locator("table").nth(i).is_visible() for i in range(len(facts["tables"]))]
    finally:
        page.close()
    where = f"{html} at {viewport['width']} px (screenshot {screenshot_dir() / shot})"

    # Self-contained: the page itself is the only request, nothing failed, nothing logged.
    assert html.as_uri() in log.requests, f"request listener saw nothing: {log.requests}"
    assert log.external_requests(("file:",)) == [], where
    assert [u for u in log.requests if u.startswith("file:") and u != html.as_uri()] == [], where
    assert log.failed_requests == [] and log.console_errors == [] and log.page_errors == [], (where, log)

    # Every figure the report lists is on the page, decoded, and matches the figures folder.
    assert pngs, f"no PNGs in {report_dir / 'figures'}"
    assert facts["figureCount"] == facts["indexEntries"] == facts["figures"] == len(facts["images"]) == len(pngs), (
        where,
        facts["figureCount"],
        facts["indexEntries"],
        facts["figures"],
        len(facts["images"]),
        [p.name for p in pngs],
    )
    for img in facts["images"]:
        assert img["complete"] and img["natural"] > 0, (where, "image did not decode", img["alt"])
        assert 0 < img["width"] <= img["container"] + 0.5 and img["right"] <= viewport["width"], (where, img)
    assert facts["missingAnchors"] == [], (where, "contents links without a target", facts["missingAnchors"])

    # Every table shows, is readable, and scrolls inside its own box rather than the page.
    assert facts["tables"], where
    for i, (table, shown) in enumerate(zip(facts["tables"], visible, strict=False)):
        assert shown and not table["hidden"] and table["width"] > 0 and table["height"] > 0, (where, i, table)
        assert table["rows"] >= 2, (where, i, table)
        assert table["boxRight"] <= viewport["width"], (where, i, "table box sticks out of the page", table)
        assert table["font"] >= MIN_FONT_PX, (where, i, table)
    assert facts["scrollWidth"] <= viewport["width"], (where, "page scrolls sideways", facts["scrollWidth"])
    return facts


def test_synthetic_report_at_laptop_width(browser, synthetic_report):
    facts = check_report_page(browser, synthetic_report, LAPTOP_VIEWPORT, "report-laptop.png")
    assert facts["figureCount"] == 5  # Figure 21, percentiles, throughput, CDF, errors/accuracy
    # Run facts, sweep settings, two Table 3s, the study beside it, two per-target summaries, errors/accuracy.
    assert len(facts["tables"]) == 8


def test_synthetic_report_at_narrow_width(browser, synthetic_report):
    check_report_page(browser, synthetic_report, NARROW_VIEWPORT, "report-narrow.png")


@pytest.fixture(scope="module")
def flagged_report(tmp_path_factory) -> Path:
    """reports/<id>/ from a synthetic run with failed, all-failed and saturated steps and a rate mode."""
    config = _config(tmp_path_factory.mktemp("browser-flagged"))
    write_flagged_run(config.results_dir, "flagged")
    assert report(config, runs=["flagged"], study_overlay=True, console=Console(quiet=True)) == 0
    return config.reports_dir / "flagged"


def test_flagged_report_in_browser(browser, flagged_report):
    """The warnings box and the flag marks are on the page, and the page still fits."""
    facts = check_report_page(browser, flagged_report, LAPTOP_VIEWPORT, "report-flagged-laptop.png")
    assert facts["figureCount"] == 6  # + the open-loop figure (latency and achieved vs offered rate)
    page = browser.new_page(viewport=NARROW_VIEWPORT)
    try:
        page.goto((flagged_report / "report.html").as_uri(), wait_until="load")
        box = page.locator("div.warnings")
        assert box.is_visible() and "step(s) are flagged" in box.inner_text()
        cells = page.locator("td").all_inner_texts()
    finally:
        page.close()
    assert "failed: 16/16 refused" in cells and any(c.endswith("✗2/16") for c in cells)
    assert any(c.endswith("⚠ saturated") for c in cells)


def test_checks_catch_overflow_and_broken_images(browser):
    """The measurements above can fail: a too-wide block and an undecodable image are seen."""
    page = browser.new_page(viewport=NARROW_VIEWPORT)
    try:
        page.set_content(
            '<div style="width:3000px">wide</div><img alt="broken" src="data:image/png;base64,AAAA">'
            '<nav class="index"><ol><li>x</li></ol></nav><a href="#nowhere">x</a>',
            wait_until="load",
        )
        facts = page.evaluate(_MEASURE)
    finally:
        page.close()
    assert facts["scrollWidth"] > NARROW_VIEWPORT["width"]
    assert facts["images"][0]["natural"] == 0
    assert facts["missingAnchors"] == ["nowhere"] and facts["figureCount"] is None


def test_explicit_chromium_env_is_exclusive(monkeypatch):
    """SERVEBENCH_CHROMIUM names the only browser to use: a wrong path means no browser, and a loud skip."""
    monkeypatch.setenv("SERVEBENCH_CHROMIUM", "/nonexistent/chromium")
    assert chromium_path() is None
    expected = "BROWSER TESTS SKIPPED: SERVEBENCH_CHROMIUM='/nonexistent/chromium'"
    with pytest.raises(pytest.skip.Exception, match=expected), browser_or_skip():
        pass


@pytest.fixture(scope="module")
def real_report(tmp_path_factory, trained_model) -> Path:
    """reports/<id>/ from a real, small ``bench run`` of one stand-in (gunicorn + Flask)."""
    from tests.support.e2e import e2e_config, run_bench

    tmp = tmp_path_factory.mktemp("browser-real")
    config = e2e_config(tmp, trained_model)
    proc = run_bench(config, "run", "greene-linserv", "--requests", "1,4", "--run-id", "browser", timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return tmp / "reports" / "browser"


@pytest.mark.slow
def test_real_run_report_in_browser(browser, real_report):
    for viewport, shot in ((LAPTOP_VIEWPORT, "report-run-laptop.png"), (NARROW_VIEWPORT, "report-run-narrow.png")):
        facts = check_report_page(browser, real_report, viewport, shot)
        assert facts["figureCount"] == 5  # the real run has per-request records, so the CDF too
