"""The Reportes page in a real (headless) Chromium, against a live stack holding the
hand-built October 2026 of ``tests/reports/fixture.py``.

The values asserted on the KPI cards are the hand-computed ones of
``tests/reports/test_indicators.py``, shown with one decimal (es-CO): 45.71 % -> "45,7 %".
The screenshot goes to ``docs/screenshots/reports-page.png`` when
``MARCADOR_UPDATE_SCREENSHOTS=1`` is set or the file is missing (else to the test's temp dir).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialer.db.models import UserCampaign
from tests.reports.fixture import FixtureIds, load_fixture
from tests.reports.test_indicators import PARETO
from tests.web.conftest import SCREENSHOTS, _missing
from tests.web.stack import PASSWORD, LiveStack, StackOptions

pytestmark = pytest.mark.slow

MONTH = "2026-10"
#: KPI card -> value shown (the hand-computed indicator, rounded half-up to one decimal).
KPIS = {
    "efectividad": "45,7 %",  # 16 / 35 = 45.71 %
    "contactabilidad": "65,2 %",  # 15 / 23 = 65.22 %
    "recuperados": "26,7 %",  # 4 / 15 = 26.67 %
    "cita-cumplida": "6,7 %",  # 1 / 15 = 6.67 %
    "cumplimiento-citas": "50,0 %",  # kept 1 / (kept 1 + no-show 1)
    "abandono-dia": "100,0 %",  # C1 on 8 and 9 Oct: 1 abandoned / 1 live
    "abandono-30": "18,2 %",  # C1 at 31 Oct: 2 / 11 = 18.18 %
    "fuera-horario": "2",  # R16 on the 12 Oct holiday and 13 Oct at 19:30
    "satisfaccion": "70,0 %",  # 7 / 10
    "pqrs-vencidas": "1",  # R4's petición, deadline 27 Oct, open at the cutoff
}
NOTES = {
    "efectividad": "16 efectivas de 35 llamadas",
    "contactabilidad": "15 de 23 clientes gestionados",
    "recuperados": "4 con cita de 15 en lista",
    "cita-cumplida": "1 de 15 clientes en lista",
    "abandono-dia": "2 días sobre el tope de 3,0 %",
}
#: Reasons for no contact (tests/reports/test_indicators.py NO_CONTACT), largest first.
NO_CONTACT_COUNTS = [2, 1, 1, 1, 1, 1, 1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """A quiet live stack (no simulated agents or customers: nothing dials in the background)
    with the fixture month loaded and the supervisor assigned to its two campaigns."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    options = StackOptions(sim_agents=0, busy_leads=0, web_leads=0)
    live = LiveStack(tmp_path_factory.mktemp("web-reports"), options).start()
    try:
        fx: FixtureIds = live.call(lambda: load_fixture(live.sessionmaker))

        async def assign() -> None:
            async with live.sessionmaker.begin() as s:
                s.add_all(
                    UserCampaign(user_id=live.seeded.supervisor, campaign_id=cid)
                    for cid in fx.campaigns.values()
                )

        live.call(assign)
        yield live
    finally:
        live.stop()


def shot(driver: Any, name: str, tmp_path: Path) -> Path:
    target = SCREENSHOTS / name
    if os.environ.get("MARCADOR_UPDATE_SCREENSHOTS") != "1" and target.exists():
        target = tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(target)), f"could not save {target}"
    return target


def _bar_counts(driver: Any, chart_id: str) -> list[int]:
    counts: list[int] = driver.execute_script(
        "return [...document.querySelectorAll(`#${arguments[0]} rect.pbar`)]"
        ".map((r) => Number(r.dataset.count));",
        chart_id,
    )
    return counts


def _pareto_layout(driver: Any, chart_id: str) -> tuple[list[str], list[str]]:
    """Each bar's axis label (its lines joined) and the cumulative % labels drawn over a bar."""
    out: tuple[list[str], list[str]] = driver.execute_script(
        """
        const svg = document.getElementById(arguments[0]);
        const bars = [...svg.querySelectorAll('rect.pbar')].map((r) => r.getBBox());
        const labels = bars.map((b) => [...svg.querySelectorAll('text.axis.label')]
          .filter((t) => Math.abs(Number(t.getAttribute('x')) - (b.x + b.width / 2)) < 0.5)
          .map((t) => t.textContent).join(' '));
        const overlaps = [];
        for (const t of svg.querySelectorAll('text.cum-label')) {
          const a = t.getBBox();
          for (const b of bars) {
            if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height
                && b.y < a.y + a.height) overlaps.push(t.textContent);
          }
        }
        return [labels, overlaps];
        """,
        chart_id,
    )
    return out


def _bar_heights(driver: Any, chart_id: str) -> list[float]:
    heights: list[float] = driver.execute_script(
        "return [...document.querySelectorAll(`#${arguments[0]} rect.pbar`)]"
        ".map((r) => Number(r.getAttribute('height')));",
        chart_id,
    )
    return heights


def test_reports_page_shows_the_hand_computed_month(
    stack: LiveStack, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.web.browser import body_data, set_value, set_viewport, sign_in, text_of, wait

    sign_in(browser, stack.base_url, LiveStack.SUPERVISOR, PASSWORD)
    wait(browser, 15, "the dashboard").until(lambda d: d.current_url.endswith("/supervisor"))
    browser.get(f"{stack.base_url}/reportes")
    # The page opens on the latest month with data (the fixture's October), not on the
    # month before today's (November or later: no data).
    wait(browser, 30, "the first report").until(
        lambda d: body_data(d, "report") in ("ready", "error")
    )
    assert body_data(browser, "report") == "ready"
    assert body_data(browser, "reportMonth") == MONTH

    # Select the fixture month and query it.
    browser.execute_script("document.body.dataset.report = 'stale';")
    set_value(browser, "f-anio", MONTH[:4])
    set_value(browser, "f-mes-num", MONTH[5:])
    browser.find_element(By.ID, "btn-consultar").click()
    wait(browser, 30, f"the report of {MONTH}").until(
        lambda d: body_data(d, "report") == "ready" and body_data(d, "reportMonth") == MONTH
    )
    assert browser.find_element(By.ID, "rep-error").text == ""
    assert "Octubre de 2026 · del 1 de octubre de 2026 al 31 de octubre de 2026" in text_of(
        browser, "#rep-periodo"
    )

    for key, value in KPIS.items():
        assert text_of(browser, f"[data-kpi='{key}'] .kpi-value") == value, key
    for key, note in NOTES.items():
        assert note in text_of(browser, f"[data-kpi='{key}'] .kpi-note"), key
    assert "level-danger" in browser.find_element(
        By.CSS_SELECTOR, "[data-kpi='fuera-horario']"
    ).get_attribute("class")

    # Pareto of opportunity areas: one bar per area, in descending order, vital few first.
    counts = _bar_counts(browser, "chart-areas")
    assert counts == [count for _, count, _, _, _ in PARETO]
    assert counts == sorted(counts, reverse=True)
    heights = _bar_heights(browser, "chart-areas")
    assert heights == sorted(heights, reverse=True) and heights[0] > heights[-1] > 0
    vital = browser.find_elements(By.CSS_SELECTOR, "#chart-areas rect.pbar.vital")
    assert len(vital) == sum(1 for *_, is_vital in PARETO if is_vital)
    points = browser.find_element(By.CSS_SELECTOR, "#chart-areas polyline.cum-line")
    assert len(points.get_attribute("points").split()) == len(PARETO)
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-areas line.threshold")
    # The other two Paretos.
    assert _bar_counts(browser, "chart-no-contacto") == NO_CONTACT_COUNTS
    assert _bar_counts(browser, "chart-no-cita") == [1, 1, 1]
    # Labels that shorten alike ("No interesad…" three times) stay distinct on the axis.
    alike = [
        "No interesado en el servicio",
        "No interesado por el precio",
        "No interesado por el precio",
        "Número equivocado",
    ]
    shortened = browser.execute_async_script(
        "import('/static/reportcharts.js').then((m) => arguments[2]("
        "m.distinctLabels(arguments[0], arguments[1]).map((l) => l.join(' '))));",
        alike,
        9,
    )
    assert len(set(shortened)) == len(alike), shortened
    assert shortened[3] == "Número equivocado"
    for chart in ("chart-areas", "chart-no-contacto", "chart-no-cita"):
        labels, overlaps = _pareto_layout(browser, chart)
        assert len(set(labels)) == len(labels), (chart, labels)
        assert overlaps == [], (chart, overlaps)

    # Agent productivity: ana 8 calls / 19:20 talk, beto 9 calls / 21:40; total 17.
    rows = browser.find_elements(By.CSS_SELECTOR, "#tabla-agentes-datos tbody tr")
    cells = [[c.text for c in r.find_elements(By.TAG_NAME, "td")][:3] for r in rows]
    assert cells == [
        ["Ana Gómez", "8", "19:20"],
        ["Beto Ruiz", "9", "21:40"],
        ["Total", "17", "41:00"],
    ]

    # Generate the month's stored report; both download links then answer 200.
    browser.find_element(By.ID, "btn-generar").click()
    wait(browser, 60, "the stored report's links").until(
        lambda d: (
            d.find_element(By.ID, "btn-xlsx").get_attribute("href")
            and d.find_element(By.ID, "btn-html").get_attribute("href")
        )
    )
    statuses = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all(['btn-xlsx', 'btn-html'].map((id) =>"
        " fetch(document.getElementById(id).href).then((r) => r.status))).then(done);"
    )
    assert statuses == [200, 200]

    # The whole page at 1366 px wide.
    height = int(browser.execute_script("return document.documentElement.scrollHeight;"))
    set_viewport(browser, 1366, min(height, 4000))
    wait(browser, 10, "the resized page").until(
        lambda d: d.execute_script("return window.innerWidth;") == 1366
    )
    shot(browser, "reports-page.png", tmp_path)

    # A month without data shows "Sin datos" instead of charts.
    browser.execute_script("document.body.dataset.report = 'stale';")
    set_value(browser, "f-mes-num", "08")
    browser.find_element(By.ID, "btn-consultar").click()
    wait(browser, 30, "the empty month").until(
        lambda d: body_data(d, "report") == "ready" and body_data(d, "reportMonth") == "2026-08"
    )
    assert text_of(browser, "[data-kpi='efectividad'] .kpi-value") == "–"
    assert not browser.find_elements(By.CSS_SELECTOR, "#chart-areas")
    assert "Sin datos" in text_of(browser, "#pareto-areas")

    # Filters: the satisfaction campaign alone (tests/reports/test_indicators.py: C2 8/15 =
    # 53.33 % effective, 8/10 = 80.00 % contacted; every opportunity area is in C2).
    browser.execute_script("document.body.dataset.report = 'stale';")
    set_value(browser, "f-mes-num", MONTH[5:])
    Select(browser.find_element(By.ID, "f-campana")).select_by_visible_text("Satisfacción posventa")
    browser.find_element(By.ID, "btn-consultar").click()
    wait(browser, 30, "the report of one campaign").until(
        lambda d: body_data(d, "report") == "ready" and body_data(d, "reportMonth") == MONTH
    )
    assert text_of(browser, "[data-kpi='efectividad'] .kpi-value") == "53,3 %"
    assert text_of(browser, "[data-kpi='contactabilidad'] .kpi-value") == "80,0 %"
    assert _bar_counts(browser, "chart-areas") == [count for _, count, _, _, _ in PARETO]
