"""The agent screen and the supervisor dashboard in a real (headless) Chromium, against a live
stack: the engine with the PBX simulator and simulated customers, the API on loopback.

The agent in the browser is a real web agent: the page logs in with the extension, the dialer
calls that extension (auto-answered by the simulator) into the nailed-up room, and customers
are connected to it like to anyone else.

Screenshots go to ``docs/screenshots/`` when ``MARCADOR_UPDATE_SCREENSHOTS=1`` is set or a file
is missing there (so ordinary runs do not rewrite them), else to the test's temp dir.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from dialer.db.models import Appointment, CallAttempt, Lead
from dialer.domain.outcomes import CampaignStatus
from tests.web.conftest import SCREENSHOTS
from tests.web.stack import PASSWORD, LiveStack, wait_for

pytestmark = pytest.mark.slow

BOGOTA = ZoneInfo("America/Bogota")


def shot(driver: Any, name: str, tmp_path: Path) -> Path:
    target = SCREENSHOTS / name
    if os.environ.get("MARCADOR_UPDATE_SCREENSHOTS") != "1" and target.exists():
        target = tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(target)), f"could not save {target}"
    return target


def test_sign_in_page_speaks_spanish_errors(stack: LiveStack, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.browser import wait

    browser.get(f"{stack.base_url}/agente")
    wait(browser, 10, "the redirect to the sign-in page").until(
        lambda d: "/ingresar" in d.current_url
    )
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es-CO"
    browser.find_element(By.ID, "usuario").send_keys(LiveStack.WEB_AGENT)
    shot(browser, "login.png", tmp_path)
    browser.find_element(By.ID, "clave").send_keys("no-es-la-clave")
    browser.find_element(By.ID, "btn-ingresar").click()
    error = browser.find_element(By.ID, "error-ingreso")
    wait(browser, 10, "the error message").until(lambda d: error.is_displayed())
    assert error.text == "Usuario o contraseña incorrectos."
    browser.get(f"{stack.base_url}/ingresar?motivo=session_expired")
    notice = browser.find_element(By.ID, "motivo")
    wait(browser, 10, "the expired-session notice").until(lambda d: notice.is_displayed())
    assert "expiró" in notice.text


def test_agent_logs_in_takes_a_call_and_books_an_appointment(
    stack: LiveStack, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from tests.web.browser import body_data, set_value, sign_in, wait

    seeded = stack.seeded
    sign_in(browser, stack.base_url, LiveStack.WEB_AGENT, PASSWORD)
    wait(browser, 15, "the agent screen").until(
        lambda d: d.current_url.endswith("/agente") and body_data(d, "ready") == "1"
    )
    assert browser.find_element(By.ID, "ingreso").is_displayed()
    # The stack runs at demo speed ×4: said on screen, and the timers run on that clock
    # (6 real seconds are 24 on the agent's timers, as for the dialer).
    badge = browser.find_element(By.ID, "reloj-demo")
    assert badge.is_displayed() and badge.text == "Reloj de la demo ×4"
    speed, seconds = browser.execute_async_script(
        "import('/static/common.js').then((m) => {"
        " const c = m.serverClock; const real = Date.now; const t0 = real();"
        " const since = new Date(c.now()).toISOString();"
        " Date.now = () => t0 + 6000; const s = c.secondsSince(since); Date.now = real;"
        " arguments[0]([c.speed, s]); });"
    )
    assert speed == 4
    assert 23 <= seconds <= 24.5
    # The campaign list may be re-rendered once more after the page is ready (a stale option
    # then): read the selected campaign inside a wait, which retries on a stale element.
    wait(browser, 15, "the agent's campaign to be selected").until(
        lambda d: Select(
            d.find_element(By.ID, "sel-campana")
        ).first_selected_option.text.startswith("Contacto proactivo · Tunja")
    )
    assert browser.find_element(By.ID, "txt-extension").get_attribute("value") == "1001"
    browser.find_element(By.ID, "btn-conectar").click()

    # The dialer calls extension 1001; the simulated softphone answers into the room: ready.
    wait(browser, 30, "the agent to be ready").until(lambda d: body_data(d, "state") == "ready")
    Select(browser.find_element(By.ID, "codigo-pausa")).select_by_value("break")
    browser.find_element(By.ID, "btn-pausa").click()
    wait(browser, 15, "the pause").until(lambda d: body_data(d, "state") == "paused")
    assert "Descanso" in browser.find_element(By.ID, "estado").text
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.F2)  # shortcut: ready
    wait(browser, 15, "ready again").until(lambda d: body_data(d, "state") == "ready")

    # The campaign starts; the first customer who answers is connected to this agent.
    stack.call(lambda: stack.set_campaign_status(seeded.web_campaign, CampaignStatus.RUNNING))
    card = browser.find_element(By.ID, "ficha")
    wait(browser, 120, "a connected call (screen-pop)").until(
        lambda d: card.is_displayed() and card.get_attribute("data-attempt")
    )
    attempt_uuid = card.get_attribute("data-attempt")
    live = stack.call(lambda: stack.agent_state(seeded.web_agent))
    assert live["attempt"] == attempt_uuid
    lead_id = int(card.get_attribute("data-lead-id"))
    lead_name = stack.call(
        lambda: stack.scalar(
            sa.select(Lead.customer_name)
            .join(CallAttempt, CallAttempt.lead_id == Lead.id)
            .where(CallAttempt.uuid == attempt_uuid)
        )
    )
    assert lead_name
    lead_of_attempt = stack.call(
        lambda: stack.scalar(sa.select(CallAttempt.lead_id).where(CallAttempt.uuid == attempt_uuid))
    )
    assert lead_of_attempt == lead_id
    assert browser.find_element(By.ID, "ficha-cliente").text == lead_name
    assert lead_name.split(" ")[0] in browser.find_element(By.ID, "ficha-guion").text
    assert "Laura Gómez" in browser.find_element(By.ID, "ficha-guion").text
    assert "{" not in browser.find_element(By.ID, "ficha-guion").text
    assert "intentos de llamada" in browser.find_element(By.ID, "historial").text.lower()

    # Shortcut 1 = "Cita agendada"; fill date, branch and service.
    browser.find_element(By.TAG_NAME, "body").send_keys("1")
    wait(browser, 5, "the appointment fields").until(
        lambda d: d.find_elements(By.ID, "f-appointment_at")
    )
    sim_now: datetime = stack.call(_sim_now(stack))
    day = (sim_now.astimezone(BOGOTA) + timedelta(days=2)).date()
    when = datetime(day.year, day.month, day.day, 10, 30, tzinfo=BOGOTA)
    # dd/mm/aaaa and 24 h text fields (the browser's locale plays no part); a date that
    # does not exist or a 12 h time is refused on the page.
    set_value(browser, "f-service", "Alineación y balanceo")
    for bad_date, bad_time in (
        (f"31/02/{day.year}", "10:30"),
        (when.strftime("%d/%m/%Y"), "10:30 AM"),
    ):
        set_value(browser, "f-appointment_at", bad_date)
        set_value(browser, "f-appointment_at-hora", bad_time)
        browser.find_element(By.ID, "btn-guardar").click()
        error = browser.find_element(By.ID, "error-tipificacion")
        assert error.is_displayed() and "dd/mm/aaaa" in error.text
    set_value(browser, "f-appointment_at", when.strftime("%d/%m/%Y"))
    set_value(browser, "f-appointment_at-hora", "10:30")
    assert "Bogotá" in browser.find_element(By.ID, "campo-appointment_at").text
    set_value(browser, "f-service", "Alineación y balanceo")
    Select(browser.find_element(By.ID, "f-branch")).select_by_value("Tunja")
    browser.find_element(By.ID, "notas").send_keys("Prefiere en la mañana.")
    # The call on screen fits a phone and a tablet (no horizontal scroll).
    from tests.web.test_responsive import WIDTHS, fits

    for width in WIDTHS:
        fits(browser, "/agente (call)", width)
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    shot(browser, "agent-screen.png", tmp_path)

    # Saved at once in wrap-up, or kept on the server (a draft) until the customer hangs up.
    browser.find_element(By.ID, "btn-guardar").click()
    wait(browser, 20, "the disposition saved or recorded").until(
        lambda d: body_data(d, "draft") == attempt_uuid or body_data(d, "lastDisposition")
    )
    print("disposition path:", "draft" if body_data(browser, "draft") else "direct")
    if body_data(browser, "draft") == attempt_uuid:
        # A reload during the call brings the saved form back from the server.
        browser.refresh()
        wait(browser, 15, "the agent screen again").until(lambda d: body_data(d, "ready") == "1")
        if stack.call(lambda: stack.agent_state(seeded.web_agent)).get("state") == "in_call":
            wait(browser, 10, "the draft restored").until(
                lambda d: body_data(d, "draft") == attempt_uuid
            )
            assert browser.find_element(By.ID, "f-service").get_attribute("value") == (
                "Alineación y balanceo"
            )
            assert browser.find_element(By.ID, "f-appointment_at-hora").get_attribute("value") == (
                "10:30"
            )
            assert "al colgar" in browser.find_element(By.ID, "btn-guardar").text
    wait(browser, 120, "the disposition to be recorded").until(
        lambda d: (
            body_data(d, "lastDisposition") == "cita_agendada"
            or stack.call(
                lambda: stack.scalar(
                    sa.select(Appointment.id).where(Appointment.lead_id == lead_id)
                )
            )
        )
    )
    row = stack.call(
        lambda: stack.scalar(sa.select(Appointment).where(Appointment.lead_id == lead_id))
    )
    assert row is not None
    assert row.lead_id == lead_id
    assert row.branch == "Tunja"
    assert row.service == "Alineación y balanceo"
    assert _aware(row.scheduled_for) == when
    wait(browser, 30, "ready after the disposition").until(
        lambda d: (
            body_data(d, "state") == "ready" and not d.find_element(By.ID, "ficha").is_displayed()
        )
    )
    stack.call(lambda: stack.set_campaign_status(seeded.web_campaign, CampaignStatus.PAUSED))


def test_supervisor_sees_counters_move_and_pauses_the_campaign(
    stack: LiveStack, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.browser import body_data, set_viewport, sign_in, wait

    cid = stack.seeded.busy_campaign
    set_viewport(browser, 1366, 1180)
    sign_in(browser, stack.base_url, LiveStack.SUPERVISOR, PASSWORD)
    wait(browser, 15, "the dashboard").until(
        lambda d: d.current_url.endswith("/supervisor") and body_data(d, "ready") == "1"
    )
    panel_css = f'section.campaign[data-campaign-id="{cid}"]'
    wait(browser, 15, "the campaign panel").until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'{panel_css}[data-status="running"]')
    )

    def attempts_today(d: Any) -> int | None:
        nodes = d.find_elements(By.CSS_SELECTOR, f'{panel_css} [data-kpi="attempts_today"]')
        value = nodes[0].get_attribute("data-value") if nodes else None
        return int(value) if value and value.isdigit() else None

    first = wait(browser, 15, "the first counters").until(
        lambda d: attempts_today(d) is not None and (attempts_today(d), 1)
    )[0]
    wait(browser, 60, "the attempt counter to move").until(
        lambda d: (attempts_today(d) or 0) >= first + 3
    )
    wait(browser, 30, "live events in the feed").until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#eventos li")) >= 3
    )
    wait(browser, 30, "agents in the grid").until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, f"{panel_css} tr[data-agent-id]")) >= 3
    )
    # Reload so that the day's charts include the calls made so far.
    browser.refresh()
    wait(browser, 30, "the charts").until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"{panel_css} .chart-calls svg rect.bar")
    )
    wait(browser, 60, "a connected agent with a customer").until(
        lambda d: any(
            c.text not in ("", "–")
            for c in d.find_elements(By.CSS_SELECTOR, f"{panel_css} td.customer-cell")
        )
    )
    shot(browser, "supervisor-dashboard.png", tmp_path)

    browser.find_element(By.CSS_SELECTOR, f"{panel_css} .btn-pause").click()
    wait(browser, 15, "the paused status on screen").until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'{panel_css}[data-status="paused"]')
    )
    assert stack.call(lambda: stack.campaign_status(cid)) is CampaignStatus.PAUSED
    status = browser.find_element(By.CSS_SELECTOR, f"{panel_css} .campaign-status").text
    assert status == "En pausa"


def _sim_now(stack: LiveStack) -> Any:
    async def now() -> datetime:
        assert stack.clock is not None
        return stack.clock.now()

    return now


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))


def test_wait_for_reports_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="the impossible"):
        wait_for(lambda: False, 0.2, "the impossible", interval=0.05)
