"""Phones and tablets: every page fits 390 px and 768 px wide without horizontal scrolling
(``document.documentElement.scrollWidth <= window.innerWidth``), in a real headless Chromium.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.stack import PASSWORD, LiveStack

pytestmark = pytest.mark.slow

WIDTHS = (390, 768)

#: The page's width and the elements that stick out on the right (for the failure message).
OVERFLOW_JS = """
const w = arguments[0];
const out = [];
const clipped = (e) => {
  for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') return true;
  }
  return false;
};
for (const e of document.querySelectorAll('body *')) {
  const r = e.getBoundingClientRect();
  if (r.width && r.right > w + 0.5 && getComputedStyle(e).position !== 'fixed' && !clipped(e)) {
    const name = `${e.tagName.toLowerCase()}#${e.id}.${[...e.classList].join('.')}`;
    out.push([Math.round(r.right), name]);
  }
}
out.sort((a, b) => b[0] - a[0]);
return [document.documentElement.scrollWidth, w, out.slice(0, 10).map((x) => `${x[1]} ${x[0]}`)];
"""


def fits(browser: Any, page: str, width: int) -> None:
    # A phone / tablet viewport (the device's width, its viewport meta tag honoured).
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )
    browser.execute_script("window.scrollTo(0, 0);")
    scroll, inner, culprits = browser.execute_script(OVERFLOW_JS, width)
    # A page wider than the phone widens the layout viewport (innerWidth) too.
    assert scroll <= width and inner == width, (
        f"{page} at {width} px is {scroll} px wide: {culprits}"
    )


def test_every_page_fits_phones_and_tablets(stack: LiveStack, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.browser import body_data, sign_in, wait

    browser.get(f"{stack.base_url}/ingresar")
    for width in WIDTHS:
        fits(browser, "/ingresar", width)

    sign_in(browser, stack.base_url, LiveStack.SUPERVISOR, PASSWORD)
    wait(browser, 15, "the dashboard").until(lambda d: d.current_url.endswith("/supervisor"))
    wait(browser, 30, "the agents grid").until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".agents-grid tbody tr")
    )
    for width in WIDTHS:
        fits(browser, "/supervisor", width)
    # The agents grid is a list of cards on a phone, not a sideways table.
    fits(browser, "/supervisor", 390)
    rows = browser.find_elements(By.CSS_SELECTOR, ".agents-grid tbody tr")
    assert rows
    row = rows[0]
    assert row.value_of_css_property("display") == "block"

    browser.get(f"{stack.base_url}/reportes")
    wait(browser, 30, "the report").until(lambda d: body_data(d, "report") in ("ready", "error"))
    for width in WIDTHS:
        fits(browser, "/reportes", width)

    browser.delete_all_cookies()
    sign_in(browser, stack.base_url, LiveStack.WEB_AGENT, PASSWORD)
    wait(browser, 15, "the agent screen").until(
        lambda d: d.current_url.endswith("/agente") and body_data(d, "ready") == "1"
    )
    for width in WIDTHS:
        fits(browser, "/agente", width)


def test_times_are_in_the_campaign_zone_whatever_the_browser(
    stack: LiveStack, browser: Any
) -> None:
    """A browser in UTC with an en-US locale still shows the campaign's (Bogotá) times,
    labelled, in 24 h: "cierra 19:00 (Bogotá)", never "12:00 a. m." or "AM"."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from selenium.webdriver.common.by import By

    from tests.web.browser import sign_in, wait

    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "UTC"})
    browser.execute_cdp_cmd("Emulation.setLocaleOverride", {"locale": "en-US"})
    sign_in(browser, stack.base_url, LiveStack.SUPERVISOR, PASSWORD)
    wait(browser, 15, "the dashboard").until(lambda d: d.current_url.endswith("/supervisor"))
    css = f"[data-campaign-id='{stack.seeded.web_campaign}'] [data-kpi='window'] .kpi-sub"
    sub = wait(browser, 30, "the call window").until(
        lambda d: "".join(e.text for e in d.find_elements(By.CSS_SELECTOR, css))
    )
    live = browser.execute_async_script(
        "fetch(`/api/v1/campaigns/${arguments[0]}/live`).then((r) => r.json()).then(arguments[1]);",
        stack.seeded.web_campaign,
    )
    window = live["window"]
    bogota = ZoneInfo("America/Bogota")
    if window["open"]:
        closes = datetime.fromisoformat(window["closes_at"]).astimezone(bogota)
        assert sub == f"cierra {closes:%H:%M} (Bogotá)"
    else:
        opens = datetime.fromisoformat(window["next_open_at"]).astimezone(bogota)
        assert sub.endswith(f"{opens:%d/%m %H:%M} (Bogotá)"), sub
    assert "AM" not in sub and "PM" not in sub and "m." not in sub
    stamp = browser.find_element(By.ID, "actualizado").text
    assert stamp.startswith("Actualizado ") and stamp.endswith("(Bogotá)"), stamp
