"""Call controls on the agent screen in a real (headless) Chromium (issue 15): the shortcuts
F6 (mute), F7 (hold / resume) and the "Colgar" button act on the live call through the API,
the dialer and the PBX simulator; the bar shows the state the dialer reports."""

from __future__ import annotations

from typing import Any

import pytest

from dialer.domain.outcomes import CampaignStatus
from tests.web.stack import PASSWORD, LiveStack

pytestmark = pytest.mark.slow


def test_agent_mutes_holds_and_hangs_up_from_the_screen(stack: LiveStack, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from tests.web.browser import body_data, sign_in, wait

    seeded = stack.seeded
    sign_in(browser, stack.base_url, LiveStack.WEB_AGENT, PASSWORD)
    wait(browser, 15, "the agent screen").until(
        lambda d: d.current_url.endswith("/agente") and body_data(d, "ready") == "1"
    )
    browser.find_element(By.ID, "btn-conectar").click()
    wait(browser, 30, "the agent to be ready").until(lambda d: body_data(d, "state") == "ready")
    assert not browser.find_element(By.ID, "controles-llamada").is_displayed()
    assert browser.find_element(By.ID, "llamada-manual").is_displayed()  # READY: may dial

    stack.call(lambda: stack.set_campaign_status(seeded.web_campaign, CampaignStatus.RUNNING))
    bar = browser.find_element(By.ID, "controles-llamada")
    wait(browser, 120, "a connected call with its controls").until(
        lambda d: body_data(d, "state") == "in_call" and bar.is_displayed()
    )
    stack.call(lambda: stack.set_campaign_status(seeded.web_campaign, CampaignStatus.PAUSED))
    attempt = browser.find_element(By.ID, "ficha").get_attribute("data-attempt")
    assert not browser.find_element(By.ID, "llamada-manual").is_displayed()
    # the transfer-out controls (built by agent_calls.js): select, blind, consult; the
    # consult's complete / cancel only while consulting
    for shown in ("transferir-fuera", "btn-transferir-fuera", "btn-consultar"):
        assert browser.find_element(By.ID, shown).is_displayed(), shown
    for hidden in ("btn-completar", "btn-cancelar-consulta", "estado-transferencia"):
        assert not browser.find_element(By.ID, hidden).is_displayed(), hidden
    body = browser.find_element(By.TAG_NAME, "body")
    mute, hold = (
        browser.find_element(By.ID, "btn-silenciar"),
        browser.find_element(By.ID, "btn-espera"),
    )

    body.send_keys(Keys.F6)  # mute
    wait(browser, 15, "muted").until(lambda d: mute.get_attribute("aria-pressed") == "true")
    assert "Activar micrófono" in mute.text
    assert stack.engine.calls[attempt].muted
    body.send_keys(Keys.F6)  # unmute
    wait(browser, 15, "unmuted").until(lambda d: mute.get_attribute("aria-pressed") == "false")

    assert not browser.find_element(By.ID, "espera-tiempo").is_displayed()
    body.send_keys(Keys.F7)  # hold
    wait(browser, 15, "on hold").until(lambda d: hold.get_attribute("aria-pressed") == "true")
    assert browser.find_element(By.ID, "espera-tiempo").is_displayed()
    assert stack.engine.calls[attempt].on_hold_since is not None
    body.send_keys(Keys.F7)  # resume
    wait(browser, 15, "resumed").until(lambda d: hold.get_attribute("aria-pressed") == "false")
    assert stack.engine.calls[attempt].hold_seconds > 0

    browser.find_element(By.ID, "btn-colgar").click()
    browser.switch_to.alert.accept()  # "¿Colgar al cliente?"
    wait(browser, 30, "wrap-up after the hang-up").until(
        lambda d: body_data(d, "state") == "wrap_up" and not bar.is_displayed()
    )
