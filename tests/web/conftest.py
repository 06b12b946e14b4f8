"""Browser tests: Debian's headless Chromium driven by selenium through the system chromedriver.

Skipped, with the reason, when chromium, chromedriver or selenium are missing (a fresh machine
running the README's test command). Install them with
``apt-get install -y chromium chromium-driver``; there is never a browser-download step.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.stack import LiveStack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _missing() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not os.access(path, os.X_OK):
            return f"{name} not found at {path} (apt-get install -y chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    live = LiveStack(tmp_path_factory.mktemp("web")).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from tests.web.browser import make_driver

    driver = make_driver(CHROMIUM, CHROMEDRIVER, tmp_path / "profile")
    try:
        yield driver
    finally:
        # Shown by pytest only when the test failed.
        try:
            print("url:", driver.current_url)
            print(
                "toasts:",
                driver.execute_script(
                    "const b = document.getElementById('avisos'); return b ? b.innerText : '';"
                ),
            )
            print("body:", driver.execute_script("return JSON.stringify(document.body.dataset);"))
            for line in driver.get_log("browser"):  # type: ignore[attr-defined]  # Chrome only
                print("console:", line.get("level"), line.get("message"))
            driver.save_screenshot(str(tmp_path / "last.png"))
            print("screenshot:", tmp_path / "last.png")
        except Exception as exc:  # the browser may be gone
            print("no browser state:", exc)
        driver.quit()
