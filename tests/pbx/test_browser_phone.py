"""The browser phone (issue 15) in Debian's headless Chromium against the real lab Asterisk.

A real ``marcador api`` + ``marcador dialer`` on the lab (``PJSIP/{extension}`` agents), with
the lab's WebRTC settings (``LabPbx.webrtc_env()``): the agent page registers browser seat 1101
over SIP-over-WebSocket (api/static/sipws.js), auto-answers the nailed-up login call (DTLS-SRTP,
ICE: Chromium's own stack, fake microphone), and talks to a lab "listener" customer that plays a
tone and records what it hears. Skipped when the bundle, chromium, chromedriver or selenium is
missing. Waits poll observable state (page data attributes, the PBX, the API); no sleeps.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ami_bridge import dialplan as dp
from dialer.db.models import Role
from dialer.domain.outcomes import CallOutcome, CampaignStatus, DialMode
from dialer.lab_pstn import listener_number
from dialer.pbx_lab import LabPbx
from dialer.softphone import wav_rms
from tests.pbx.phones import phone_channels, room_members, set_campaign_status
from tests.pbx.stack import PASSWORD, PbxStack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SEAT = "1101"


def _missing() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not os.access(path, os.X_OK):
            return f"{name} not found at {path} (apt-get install -y chromium chromium-driver)"
    return None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def webrtc_stack(
    lab_pbx: LabPbx, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PbxStack]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    stack = PbxStack(
        lab_pbx,
        tmp_path_factory.mktemp("pbx-webrtc"),
        virtual_agents=False,
        extra_env=lab_pbx.webrtc_env(),
    )
    stack.start()
    try:
        yield stack
    finally:
        await stack.aclose()


@pytest.fixture
def chrome(tmp_path: Path) -> Iterator[Any]:
    from tests.web.browser import FAKE_MEDIA, make_driver

    driver = make_driver(CHROMIUM, CHROMEDRIVER, tmp_path / "profile", FAKE_MEDIA)
    try:
        yield driver
    finally:
        try:  # shown by pytest only when the test failed
            print("body:", driver.execute_script("return JSON.stringify(document.body.dataset);"))
            for line in driver.get_log("browser"):  # type: ignore[attr-defined]  # Chrome only
                print("console:", line.get("level"), line.get("message"))
        except Exception as exc:  # the browser may be gone
            print("no browser state:", exc)
        driver.quit()


def _heard(lab: LabPbx, number: str) -> Path | None:
    found = list(lab.pbx_dir.rglob(f"lab-heard-{number.lstrip('+')}.wav"))
    return found[0] if found else None


async def _until(driver: Any, what: str, within: float, probe: Any) -> Any:
    """Poll a page condition without blocking the module's event loop for long."""

    async def check() -> Any:
        return await asyncio.to_thread(probe, driver)

    return await wait_until(check, within=within, what=what)


def _data(driver: Any, name: str) -> Any:
    return driver.execute_script("return document.body.dataset[arguments[0]] || null;", name)


async def test_the_agent_page_registers_answers_the_session_and_talks_both_ways(
    webrtc_stack: PbxStack, chrome: Any
) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.browser import sign_in

    stack, lab = webrtc_stack, webrtc_stack.lab
    number = listener_number(1)
    camp, _ = await stack.seed_campaign(
        [number], mode=DialMode.PROGRESSIVE, max_attempts=1, status=CampaignStatus.PAUSED
    )
    (user,) = await stack.add_agents(camp, [SEAT])
    base = f"http://127.0.0.1:{stack.api_port}"

    # 1. The page registers the seat from the browser.
    await asyncio.to_thread(sign_in, chrome, base, user.username, PASSWORD)
    await _until(
        chrome, "the browser phone registered", 30, lambda d: _data(d, "phone") == "registered"
    )
    assert f"{SEAT}/sip:{SEAT}@" in lab.cli("pjsip show contacts").replace(" ", "")
    assert chrome.find_element(By.ID, "telefono").is_displayed()

    # 2. Log in to the campaign: the dialer calls PJSIP/1101, the page auto-answers.
    await asyncio.to_thread(lambda: chrome.find_element(By.ID, "btn-conectar").click())
    await _until(
        chrome,
        "the nailed-up call answered (en sala)",
        45,
        lambda d: _data(d, "phone") in ("room", "audio") and _data(d, "state") == "ready",
    )
    assert len(phone_channels(lab, SEAT)) == 1
    assert room_members(lab, SEAT) == phone_channels(lab, SEAT)

    # 3. A customer is put through; audio flows both ways.
    await set_campaign_status(stack, camp, CampaignStatus.RUNNING)
    await _until(chrome, "the customer connected", 60, lambda d: _data(d, "state") == "in_call")
    await set_campaign_status(stack, camp, CampaignStatus.PAUSED)
    stats0 = await asyncio.to_thread(chrome.execute_script, "return window.marcadorPhone.stats();")
    await _until(
        chrome,
        "inbound RTP at the page (audio activo)",
        20,
        lambda d: (
            _data(d, "phone") == "audio"
            and int(d.execute_script("return document.body.dataset.phonePackets") or 0)
            > int(stats0["packetsReceived"]) + 100
        ),
    )
    stats = await asyncio.to_thread(chrome.execute_script, "return window.marcadorPhone.stats();")
    assert stats["packetsSent"] > 100 and stats["audioLevel"] > 0

    # 4. Mute and hold from the call controls, then hang up.
    mute = chrome.find_element(By.ID, "btn-silenciar")
    await asyncio.to_thread(mute.click)
    await _until(chrome, "muted", 15, lambda d: mute.get_attribute("aria-pressed") == "true")
    await asyncio.to_thread(mute.click)
    await _until(chrome, "unmuted", 15, lambda d: mute.get_attribute("aria-pressed") == "false")
    hold = chrome.find_element(By.ID, "btn-espera")
    await asyncio.to_thread(hold.click)
    await _until(chrome, "on hold", 15, lambda d: hold.get_attribute("aria-pressed") == "true")
    await asyncio.to_thread(hold.click)
    await _until(chrome, "resumed", 15, lambda d: hold.get_attribute("aria-pressed") == "false")
    await asyncio.to_thread(lambda: chrome.find_element(By.ID, "btn-colgar").click())
    await asyncio.to_thread(lambda: chrome.switch_to.alert.accept())  # "¿Colgar al cliente?"
    await _until(chrome, "wrap-up after hang-up", 20, lambda d: _data(d, "state") == "wrap_up")
    (attempt,) = (await stack.wait_final(camp, [number], within=30)).values()
    assert attempt.outcome is CallOutcome.ANSWERED_CONNECTED

    # The customer heard the browser's (fake) microphone; the session call is still up.
    heard = await wait_until(
        lambda: asyncio.to_thread(_heard, lab, number), within=15, what="the listener's file"
    )
    rms = wav_rms(heard)
    assert rms > 100.0, f"the customer heard silence (rms {rms:.0f})"
    assert _data(chrome, "phone") in ("room", "audio")
    assert len(phone_channels(lab, SEAT)) == 1


async def test_a_network_blip_and_a_page_reload_keep_the_session_call(
    webrtc_stack: PbxStack, chrome: Any
) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.browser import sign_in

    stack, lab, seat = webrtc_stack, webrtc_stack.lab, "1102"
    camp, _ = await stack.seed_campaign([], status=CampaignStatus.PAUSED)
    (user,) = await stack.add_agents(camp, [seat])
    await asyncio.to_thread(
        sign_in, chrome, f"http://127.0.0.1:{stack.api_port}", user.username, PASSWORD
    )
    await _until(chrome, "registered", 30, lambda d: _data(d, "phone") == "registered")
    await asyncio.to_thread(lambda: chrome.find_element(By.ID, "btn-conectar").click())
    await _until(
        chrome,
        "in the room",
        45,
        lambda d: _data(d, "phone") in ("room", "audio") and _data(d, "state") == "ready",
    )
    (channel,) = phone_channels(lab, seat)

    # A network blip: the WebSocket drops; the page reconnects, re-registers and refreshes the
    # dialog with a re-INVITE from the new connection. The same channel stays in the room.
    await asyncio.to_thread(chrome.execute_script, "window.marcadorPhone.drop();")
    await _until(
        chrome,
        "the call resumed after the reconnect",
        30,
        lambda d: _data(d, "phoneCall") == "resumed" and _data(d, "phone") in ("room", "audio"),
    )
    assert phone_channels(lab, seat) == [channel]
    assert room_members(lab, seat) == [channel]

    # A page reload: the old page's peer connection is gone, and Asterisk 22 cannot hand the
    # media to a new one (it keeps its DTLS association on a re-INVITE), so the reloaded page
    # ends the stale session call cleanly (BYE in the dialog kept in sessionStorage: no dead
    # channel left in the room, no DTLS warnings) and the agent logs in again, with media.
    await asyncio.to_thread(chrome.refresh)
    await _until(
        chrome,
        "the stale session ended after the reload",
        45,
        lambda d: _data(d, "phone") == "registered" and _data(d, "state") == "logged_out",
    )
    assert not phone_channels(lab, seat) and not room_members(lab, seat)

    def relogged(d: Any) -> bool:
        if _data(d, "state") == "logged_out":  # the dialer may still be closing the session
            button = d.find_element(By.ID, "btn-conectar")
            if button.is_displayed() and button.is_enabled():
                button.click()
        return bool(_data(d, "phone") in ("room", "audio") and _data(d, "state") == "ready")

    await _until(chrome, "in the room again, with media", 60, relogged)
    assert len(phone_channels(lab, seat)) == 1


async def test_a_supervisor_listens_and_barges_from_the_browser_phone(
    webrtc_stack: PbxStack, chrome: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.browser import FAKE_MEDIA, make_driver, sign_in

    stack, seat, sup_seat = webrtc_stack, "1103", "2101"
    number = listener_number(3)
    camp, _ = await stack.seed_campaign([number], status=CampaignStatus.PAUSED, max_attempts=1)
    (agent_user,) = await stack.add_agents(camp, [seat])
    (sup_user,) = await stack.add_agents(camp, [sup_seat], role=Role.SUPERVISOR)
    base = f"http://127.0.0.1:{stack.api_port}"
    await asyncio.to_thread(sign_in, chrome, base, agent_user.username, PASSWORD)
    await _until(chrome, "agent registered", 30, lambda d: _data(d, "phone") == "registered")
    await asyncio.to_thread(lambda: chrome.find_element(By.ID, "btn-conectar").click())
    await _until(chrome, "agent ready", 45, lambda d: _data(d, "state") == "ready")
    await set_campaign_status(stack, camp, CampaignStatus.RUNNING)
    await _until(chrome, "the customer connected", 60, lambda d: _data(d, "state") == "in_call")
    await set_campaign_status(stack, camp, CampaignStatus.PAUSED)

    sup_driver = await asyncio.to_thread(
        make_driver, CHROMIUM, CHROMEDRIVER, tmp_path / "sup-profile", FAKE_MEDIA
    )
    try:
        await asyncio.to_thread(sign_in, sup_driver, base, sup_user.username, PASSWORD)
        await _until(sup_driver, "signed in", 20, lambda d: "/ingresar" not in d.current_url)
        if not sup_driver.current_url.endswith("/supervisor"):
            await asyncio.to_thread(sup_driver.get, f"{base}/supervisor")
        await _until(
            sup_driver, "supervisor registered", 30, lambda d: _data(d, "phone") == "registered"
        )
        sup = await stack.agent_client(sup_user)
        for mode in ("listen", "barge"):
            r = await sup.post(f"/agents/{agent_user.id}/spy", {"mode": mode})
            assert r.status_code == 202, r.text
            await _until(
                sup_driver,
                f"{mode}: the supervisor's browser phone hears the call",
                30,
                lambda d: (
                    _data(d, "phone") == "audio"
                    and int(d.execute_script("return document.body.dataset.phonePackets || 0")) > 50
                ),
            )
            spies = [c for c in stack.channels() if c["context"] == dp.CTX_SPY]
            assert len(spies) == 1 and spies[0]["exten"] == mode, spies
            assert spies[0]["name"].startswith(f"PJSIP/{sup_seat}-")
        r = await sup.delete(f"/agents/{agent_user.id}/spy")
        assert r.status_code in (200, 202, 204), r.text
        await _until(sup_driver, "spy ended", 20, lambda d: _data(d, "phoneCall") == "ended")
    finally:
        print("supervisor page:", sup_driver.current_url, _data(sup_driver, "phone"))
        for line in sup_driver.get_log("browser"):  # type: ignore[attr-defined]  # Chrome only
            print("supervisor console:", line.get("level"), line.get("message"))
        await asyncio.to_thread(sup_driver.quit)
    assert _data(chrome, "state") == "in_call"  # the agent's call went on
    stack.hangup_customer(number)


async def test_transfer_between_two_browser_phones(
    webrtc_stack: PbxStack, chrome: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.browser import FAKE_MEDIA, make_driver, set_value, sign_in

    stack, lab = webrtc_stack, webrtc_stack.lab
    number = listener_number(4)
    camp, _ = await stack.seed_campaign([number], status=CampaignStatus.PAUSED, max_attempts=1)
    users = await stack.add_agents(camp, ["1104", "1105"])
    base = f"http://127.0.0.1:{stack.api_port}"
    other = await asyncio.to_thread(
        make_driver, CHROMIUM, CHROMEDRIVER, tmp_path / "b-profile", FAKE_MEDIA
    )
    drivers = [chrome, other]
    try:
        for driver, user in zip(drivers, users, strict=True):
            await asyncio.to_thread(sign_in, driver, base, user.username, PASSWORD)
            await _until(driver, "registered", 30, lambda d: _data(d, "phone") == "registered")
            button = driver.find_element(By.ID, "btn-conectar")
            await asyncio.to_thread(button.click)
            await _until(driver, "ready", 45, lambda d: _data(d, "state") == "ready")
        await set_campaign_status(stack, camp, CampaignStatus.RUNNING)

        async def taker() -> int | None:
            states = [await asyncio.to_thread(_data, d, "state") for d in drivers]
            return states.index("in_call") + 1 if "in_call" in states else None

        first = await wait_until(taker, within=60, what="one agent on the call") - 1
        await set_campaign_status(stack, camp, CampaignStatus.PAUSED)
        a, b = drivers[first], drivers[1 - first]
        target = users[1 - first]
        await _until(
            a,
            "the other agent offered as a transfer target",
            20,
            lambda d: bool(
                d.execute_script(
                    "const o = [...document.getElementById('transferir-a').options]"
                    ".find(x => x.value === arguments[0]); return o && !o.disabled;",
                    str(target.id),
                )
            ),
        )
        await asyncio.to_thread(set_value, a, "transferir-a", str(target.id))
        await asyncio.to_thread(lambda: a.find_element(By.ID, "btn-transferir").click())
        await asyncio.to_thread(lambda: a.switch_to.alert.accept())  # "¿Transferir la llamada…?"
        await _until(
            b,
            "the transferred call at the other agent",
            30,
            lambda d: _data(d, "state") == "in_call",
        )
        packets = int(b.execute_script("return document.body.dataset.phonePackets || 0"))
        await _until(
            b,
            "the customer's audio at the other browser",
            20,
            lambda d: (
                int(d.execute_script("return document.body.dataset.phonePackets || 0"))
                > packets + 50
                and _data(d, "phone") == "audio"
            ),
        )
        assert _data(a, "state") != "in_call"
        assert len(phone_channels(lab, target.extension)) == 1
    finally:
        await asyncio.to_thread(other.quit)
    stack.hangup_customer(number)


def _closed_wav(path: Path) -> int | None:
    """The frame count of a WAV once its writer closed it (the header counts every frame)."""
    import wave

    with wave.open(str(path), "rb") as wav:
        frames, width = wav.getnframes(), wav.getsampwidth()
    data = path.stat().st_size - 44
    return frames if frames > 0 and frames * width >= data else None


def _room_flags(lab: LabPbx, extension: str) -> dict[str, str]:
    """Channel -> its flags column in ``confbridge list agent-<ext>`` (``m``: muted)."""
    lines = lab.cli(f"confbridge list agent-{extension}").splitlines()
    header = next((ln for ln in lines if ln.startswith("Channel") and "Flags" in ln), None)
    assert header is not None, lines
    start = header.index("Flags")
    end = header.index("User Profile") if "User Profile" in header else start + 6
    flags: dict[str, str] = {}
    for line in lines:
        first = line.split(" ", 1)[0]
        if "/" in first and not first.startswith("="):
            flags[first] = line[start:end].strip()
    return flags


def _rms_after(path: Path, offset: int) -> float:
    """RMS of a closed 16-bit WAV's audio from byte ``offset`` of the file on."""
    import audioop

    data = path.read_bytes()[max(44, offset) :]
    data = data[: len(data) // 2 * 2]
    return float(audioop.rms(data, 2)) if data else 0.0


async def test_a_page_reload_mid_call_rejoins_the_same_customer(
    webrtc_stack: PbxStack, chrome: Any
) -> None:
    """Issue 15: the page reloads while IN_CALL; the customer stays (music on hold in the
    agent's room), the reloaded page asks to rejoin, the dialer calls the seat again into the
    SAME room, the agent is back on the same call with audio, and the call has one outcome."""
    from selenium.webdriver.common.by import By

    from tests.web.browser import sign_in

    stack, lab, seat = webrtc_stack, webrtc_stack.lab, "1106"
    number = listener_number(6)
    camp, _ = await stack.seed_campaign(
        [number], mode=DialMode.PROGRESSIVE, max_attempts=1, status=CampaignStatus.PAUSED
    )
    (user,) = await stack.add_agents(camp, [seat])
    client = await stack.agent_client(user)
    await asyncio.to_thread(
        sign_in, chrome, f"http://127.0.0.1:{stack.api_port}", user.username, PASSWORD
    )
    await _until(chrome, "registered", 30, lambda d: _data(d, "phone") == "registered")
    await asyncio.to_thread(lambda: chrome.find_element(By.ID, "btn-conectar").click())
    await _until(chrome, "ready", 45, lambda d: _data(d, "state") == "ready")
    await set_campaign_status(stack, camp, CampaignStatus.RUNNING)
    await _until(chrome, "the customer connected", 60, lambda d: _data(d, "state") == "in_call")
    await set_campaign_status(stack, camp, CampaignStatus.PAUSED)
    await _until(chrome, "audio", 20, lambda d: _data(d, "phone") == "audio")
    (customer,) = [c["name"] for c in stack.customer_channels(number) if c["name"].endswith(";1")]
    attempt = (await client.live()).get("attempt")
    assert attempt
    # The agent mutes before the reload: the rejoined seat must be muted too.
    mute = chrome.find_element(By.ID, "btn-silenciar")
    await asyncio.to_thread(mute.click)
    await _until(chrome, "muted", 15, lambda d: mute.get_attribute("aria-pressed") == "true")
    (before,) = phone_channels(lab, seat)
    print(f"muted before the reload: {_room_flags(lab, seat)}")
    assert "m" in _room_flags(lab, seat)[before]

    loop = asyncio.get_running_loop()
    reloaded_at = loop.time()
    await asyncio.to_thread(chrome.refresh)
    # The reloaded page ends the stale session call, then asks to rejoin: meanwhile the agent
    # is reconnecting, still on the same call, and the customer waits in the room.
    seen: list[str] = []

    async def back_in_the_room() -> bool:
        live = await client.live()
        names = [c["name"] for c in stack.customer_channels(number)]
        seen.append(f"{live.get('state')}/{live.get('reconnecting')}/{len(names)}")
        if customer not in names:  # what happened (the measurement of issue 15)
            final = await stack.attempt_of(camp, number, final=True)
            outcome = final.outcome if final else None
            raise AssertionError(f"the customer's channel is gone: {seen[-5:]}, {outcome}")
        phone = await asyncio.to_thread(_data, chrome, "phone")
        return bool(
            live.get("state") == "in_call"
            and live.get("attempt") == attempt
            and not live.get("reconnecting")
            and phone in ("room", "audio")
        )

    await wait_until(back_in_the_room, within=60, what="the agent back on the same call")
    print(f"reload -> back in the room: {loop.time() - reloaded_at:.1f} s; polls: {seen}")
    # Alone in the room meanwhile, the customer heard music on hold (marcador_customer).
    full_log = (lab.pbx_dir / "log" / "full.log").read_text(errors="replace")
    moh = [ln for ln in full_log.splitlines() if "music on hold" in ln and customer in ln]
    assert moh, "no music on hold for the waiting customer"
    assert "agent_session_lost_rejoin_pending" in stack.log("dialer-1"), seen
    assert "agent_rejoining" in stack.log("dialer-1")
    (channel,) = phone_channels(lab, seat)
    assert customer in [c["name"] for c in stack.customer_channels(number)]
    assert len(room_members(lab, seat)) == 2  # the new session channel + the same customer
    # The new session channel joined unmuted; the dialer muted it again, as the page shows.
    flags = await wait_until(
        lambda: asyncio.to_thread(lambda: f if channel in (f := _room_flags(lab, seat)) else None),
        within=10,
        what="the rejoined seat in the room",
    )
    print(f"after the rejoin: {flags}")
    assert "m" in flags[channel], flags
    assert "agent_mute_reapplied" in stack.log("dialer-1")
    unmute = chrome.find_element(By.ID, "btn-silenciar")
    await _until(
        chrome, "still muted", 15, lambda d: unmute.get_attribute("aria-pressed") == "true"
    )
    await asyncio.to_thread(unmute.click)
    await _until(chrome, "unmuted", 15, lambda d: unmute.get_attribute("aria-pressed") == "false")
    assert "m" not in _room_flags(lab, seat)[channel]
    packets = int(_data(chrome, "phonePackets") or 0)
    await _until(
        chrome,
        "the customer's audio at the reloaded page",
        20,
        lambda d: (
            _data(d, "phone") == "audio" and int(_data(d, "phonePackets") or 0) > packets + 100
        ),
    )
    assert _data(chrome, "state") == "in_call"
    heard = _heard(lab, number)
    assert heard is not None  # MixMonitor writes it from the answer on
    rejoined_at = heard.stat().st_size  # what the customer hears from here on is after the rejoin
    await _until(
        chrome,
        "more of the customer's audio after the rejoin",
        20,
        lambda d: int(_data(d, "phonePackets") or 0) > packets + 200,
    )

    # The customer hears the agent again; one outcome; nothing left on the PBX.
    stack.hangup_customer(number)
    await _until(chrome, "wrap-up", 20, lambda d: _data(d, "state") == "wrap_up")
    finals = await stack.wait_final(camp, [number], within=30)
    assert finals[number].outcome is CallOutcome.ANSWERED_CONNECTED
    assert len([a for a in await stack.attempts(camp) if a.number == number]) == 1
    await wait_until(
        lambda: asyncio.to_thread(_closed_wav, heard), within=15, what="the listener's file closed"
    )
    rms = _rms_after(heard, rejoined_at)
    after = heard.stat().st_size - rejoined_at
    print(f"after the rejoin the customer heard {after} bytes, rms {rms:.0f}")
    assert rms > 100.0, f"the customer heard silence after the rejoin (rms {rms:.0f})"
    r = await client.post("/agent/logout")
    assert r.status_code in (200, 202), r.text
    await wait_until(
        lambda: asyncio.to_thread(lambda: not phone_channels(lab, seat) or None),
        within=20,
        what="no session channel left",
    )
    assert not stack.customer_channels(number) and not room_members(lab, seat)
    assert channel not in phone_channels(lab, seat)
