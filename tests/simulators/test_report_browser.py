"""The report in a real browser: Debian's chromium driven by Playwright loads report.html from
disk, every chart renders, nothing goes to the network, and a screenshot is kept.

Needs the Debian package ``chromium`` and the Python package ``playwright`` (its own browser
downloads are not used: ``executable_path`` points at the system chromium). Skipped with the
reason when either is missing, unless CI=true or SETPOINT_REQUIRE_BROWSER=1 (then it fails, so
that CI cannot skip it silently). The screenshot goes to $SETPOINT_ARTIFACTS when set, else to
the test's tmp_path; its path is printed (pytest -s shows it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM_BIN = os.environ.get("SETPOINT_CHROMIUM_BIN", "/usr/bin/chromium")
REQUIRE_ENV = "SETPOINT_REQUIRE_BROWSER"
CHECKOUT = Path(__file__).resolve().parents[2]
#: No sandbox (root in a container), no GPU, and none of the browser's own traffic (updates,
#: sync, QUIC probes, first-run pages), so that every request the page makes is the report's.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1300, "height": 900}
LOCAL_SCHEMES = ("file:", "data:")


def require_browser() -> None:
    """Skip when chromium or playwright is missing; fail instead on CI."""
    missing = []
    if not os.access(CHROMIUM_BIN, os.X_OK):
        missing.append(f"{CHROMIUM_BIN} (Debian package 'chromium': apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install -e '.[test]')")
    if not missing:
        return
    reason = f"a real browser is needed and {' and '.join(missing)} is missing"
    if os.environ.get("CI") == "true" or os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"CI=true or {REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def bad_rollout_report(tmp_path_factory) -> Path:
    """report.html of the bundled bad-rollout scenario under the healing policy (1 h at 5 s
    ticks, with HPA's frontier): every kind of chart the report draws."""
    require_browser()  # before the simulation: a skip should cost nothing
    cwd = tmp_path_factory.mktemp("report")
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "simulate", "bad-rollout", "--policy",
                           str(CHECKOUT / "policies" / "setpoint-healing.yaml"), "--out", "out"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return cwd / "out" / "report.html"


def artifacts_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SETPOINT_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_report_renders_in_chromium_without_the_network(bad_rollout_report, tmp_path):
    from playwright.sync_api import sync_playwright

    html = bad_rollout_report.read_text(encoding="utf-8")
    charts = len(re.findall(r'<img src="data:image/png;base64,', html)) + html.count("<svg")
    assert charts >= 5  # overview, cost/violation plane, three panel sets
    requests: list[str] = []
    errors: list[str] = []
    screenshot = artifacts_dir(tmp_path) / "report-bad-rollout.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM_BIN, headless=True, args=CHROMIUM_ARGS,
            viewport=VIEWPORT, timeout=60_000)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(bad_rollout_report.resolve().as_uri(), wait_until="load", timeout=60_000)
            images = page.evaluate("""() => Array.from(document.images).map(i => (
                {alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))""")
            svgs = page.evaluate("() => document.querySelectorAll('svg').length")
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    print(f"\nscreenshot of the report: {screenshot}")

    assert title == "Setpoint simulation: bad-rollout"
    assert len(images) + svgs == charts
    broken = [i["alt"] for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert not broken, f"charts that did not render: {broken}"
    assert {"overview: every controller on the same axes", "cost vs violations: HPA's frontier",
            "policy panel set", "hpa panel set", "oracle panel set"} <= {i["alt"] for i in images}
    assert requests and all(u.startswith(LOCAL_SCHEMES) for u in requests), requests
    assert not errors
    assert overflow <= 0, "the report is wider than a 1300 px window"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
