"""The report in a real browser (Debian's headless Chromium driven by Playwright): sort, filter,
switch leaderboards, screenshot, and prove that the page made no network request."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gencritic.report.builder import build_report
from gencritic.report.data import load_results
from tests.report_helpers import scored_run

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOT_DIR = Path(os.environ.get("GENCRITIC_SCREENSHOT_DIR", "")) if os.environ.get("GENCRITIC_SCREENSHOT_DIR") \
    else None


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Path:
    base = tmp_path_factory.mktemp("report_browser")
    out = scored_run(base, tiny_clip_dir)
    html = base / "report.html"
    build_report(out, html)
    return html


def test_sort_filter_screenshot_offline(report: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    data = load_results(report.parent / "out")
    scored = [r for r in data.rows if r["success"]]
    best = max(scored, key=lambda r: r["clip_score"])["item_id"]
    worst = min(scored, key=lambda r: r["clip_score"])["item_id"]
    total = len(data.rows)

    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        # a fresh, empty profile (Playwright passes it as --user-data-dir)
        browser = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                        headless=True, args=FLAGS,
                                                        viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            page.on("request", lambda req: requests.append(req.url))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(report.as_uri())
            page.wait_for_selector("#items tbody tr")

            ids = lambda: page.eval_on_selector_all("#items tbody tr", "rs => rs.map(r => r.dataset.itemId)")  # noqa: E731
            assert page.text_content("#row-count") == f"{total} of {total} items"
            original = ids()
            assert len(original) == total

            header = page.locator('#items th[data-col="clip_score"]')
            header.click()  # higher is better: the first click puts the best first
            assert header.get_attribute("aria-sort") == "descending"
            after_sort = ids()
            assert after_sort[0] == best and after_sort != original
            assert after_sort[-1] == "broken.png"  # missing scores sort last
            header.click()
            assert header.get_attribute("aria-sort") == "ascending"
            assert ids()[0] == worst
            shown = page.eval_on_selector_all('#items tbody td[data-col="clip_score"]', "cs => cs.map(c => c.textContent)")
            values = [float(v) for v in shown if v]
            assert values == sorted(values)

            page.fill("#filter", "gen_a")
            gen_a = [r["item_id"] for r in data.rows if r.get("generator") == "gen_a"]
            assert sorted(ids()) == sorted(gen_a)
            assert page.text_content("#row-count") == f"{len(gen_a)} of {total} items"
            page.fill("#filter", "asset")
            assert sorted(ids()) == ["asset0", "asset1"]
            strips = page.eval_on_selector_all("#items tbody tr", "rs => rs.map(r => r.querySelectorAll('img').length)")
            assert sorted(strips) == [2, 3]  # every view of a multi-view asset is in its strip
            page.fill("#filter", "")
            page.check("#failed-only")
            assert ids() == ["broken.png"]
            page.uncheck("#failed-only")

            leaderboard = page.eval_on_selector_all("#leaderboard tbody tr td:first-child", "cs => cs.map(c => c.textContent)")
            assert sorted(leaderboard) == ["gen_a", "gen_b"]
            assert page.locator("#correlations tbody tr").count() >= 1
            assert page.locator("#histograms svg").count() >= 2
            assert page.locator("#best-gallery .tile").first.get_attribute("data-item-id") == best

            page.fill("#filter", "gen_")
            header.click()
            shot = (SCREENSHOT_DIR or tmp_path) / "report.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            assert not errors, errors
        finally:
            browser.close()

    assert requests, "the page load itself should be recorded"
    offline = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert not offline, f"the report made network requests: {offline}"
