"""Agents on real softphones (``marcador softphone``'s :class:`Softphone`), not virtual agents.

One ``marcador api`` + ``marcador dialer`` stack for the module, dialing agents at
``PJSIP/{extension}`` (the production agent channel); one softphone registers seats 1001-1004
of the lab with its generated passwords and auto-answers. Each test uses its own seats and
campaign, so the stack is shared. Every assertion is on the API/DB and on the PBX's channels
and rooms; nothing sleeps to wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from dialer.domain.outcomes import CallOutcome, DialMode
from dialer.lab_pstn import TALKER_TONE_HZ, expected_outcome, talker_number
from dialer.pbx_lab import LabPbx
from dialer.softphone import Softphone, wav_rms
from tests.pbx.phones import (
    in_thread,
    lab_phone,
    live_recording,
    phone_channels,
    room_members,
)
from tests.pbx.stack import AgentClient, PbxStack, wait_until
from tests.pbx.test_softphone import goertzel

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEATS = ("1001", "1002", "1003", "1004")
MIN_RMS = 500.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone_stack(
    lab_pbx: LabPbx, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PbxStack]:
    stack = PbxStack(lab_pbx, tmp_path_factory.mktemp("pbx-phones"), virtual_agents=False)
    stack.start()
    try:
        yield stack
    finally:
        await stack.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(
    lab_pbx: LabPbx, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Softphone]:
    rec = tmp_path_factory.mktemp("phone-rec")
    p = await in_thread(lab_phone(lab_pbx, SEATS, record_dir=rec))
    try:
        yield p
    finally:
        await asyncio.to_thread(p.stop)


async def _login(stack: PbxStack, camp: int, ext: str) -> AgentClient:
    (user,) = await stack.add_agents(camp, [ext])
    (client,) = await stack.login_agents(camp, [user])
    return client


async def _no_session_left(lab: LabPbx, ext: str) -> bool:
    return not phone_channels(lab, ext) and not room_members(lab, ext)


async def test_phone_agent_logs_in_takes_a_call_and_hears_the_customer(
    phone_stack: PbxStack, phone: Softphone
) -> None:
    lab, ext = phone_stack.lab, "1001"
    number = talker_number(1)
    camp, _ = await phone_stack.seed_campaign([number], mode=DialMode.PROGRESSIVE, max_attempts=1)
    mark = phone.mark()
    client = await _login(phone_stack, camp, ext)

    # Login: the phone answered the dialer's call and sits alone in its nailed-up room.
    answered = await phone.wait_for_async("answered", ext, within=5, since=mark)
    assert answered.answer_delay is not None and answered.answer_delay >= 1.0
    assert len(phone_channels(lab, ext)) == 1
    assert room_members(lab, ext) == phone_channels(lab, ext)

    # The talker customer is dialed and put through: the agent is in_call with its attempt.
    async def connected() -> str | None:
        row = await phone_stack.attempt_of(camp, number)
        live = await client.live()
        if row is not None and live.get("state") == "in_call" and live.get("attempt") == row.uuid:
            return row.uuid
        return None

    attempt = await wait_until(connected, within=40, what="the talker put through to 1001")
    assert len(room_members(lab, ext)) == 2  # the phone and the customer

    # Audio: what the phone hears becomes loud once the customer's tone reaches the room.
    async def heard() -> bool:
        return live_recording(phone, ext)[1] > MIN_RMS

    await wait_until(heard, within=15, what="the customer's tone in 1001's recording")

    # The customer hangs up: answered_connected with this agent, then wrap-up.
    assert phone_stack.hangup_customer(number)
    done = await wait_until(
        lambda: phone_stack.attempt_of(camp, number, final=True),
        within=20,
        what="the outcome",
    )
    assert done.outcome == expected_outcome(number) == CallOutcome.ANSWERED_CONNECTED
    assert done.agent_id == client.user.id and done.connected_at is not None
    await wait_until(
        lambda: _state_is(client, "wrap_up"), within=10, what="1001 in wrap-up after the call"
    )
    r = await client.post(
        "/agent/disposition",
        {"attempt": attempt, "code": "no_interesado", "details": {"reason": "precio"}},
    )
    assert r.status_code == 200, r.text
    await wait_until(lambda: _state_is(client, "ready"), within=10, what="1001 ready again")
    assert phone_channels(lab, ext) == room_members(lab, ext)  # still in the room, alone

    # Logout: the dialer hangs up the session call (the phone sees a BYE), the room is gone.
    mark = phone.mark()
    r = await client.post("/agent/logout")
    assert r.status_code == 202, r.text
    ended = await phone.wait_for_async("ended", ext, within=10, since=mark)
    assert ended.reason == "remote_bye"
    await wait_until(lambda: _state_is(client, "logged_out"), within=10, what="1001 logged out")
    await wait_until(lambda: _no_session_left(lab, ext), within=10, what="no channel of 1001")

    # The whole session's recording: non-silent, and the customer's tone dominates it.
    assert ended.recording is not None and ended.recorded_rms is not None
    assert ended.recorded_rms > MIN_RMS / 2, ended.recorded_rms
    assert wav_rms(ended.recording) > MIN_RMS / 2
    tone = goertzel(ended.recording, TALKER_TONE_HZ)
    assert tone > 5 * goertzel(ended.recording, 1000.0), tone
    assert tone > 5 * goertzel(ended.recording, 440.0), tone


async def _state_is(client: AgentClient, state: str) -> bool:
    return await client.state() == state


async def test_phone_hanging_up_logs_the_agent_out(phone_stack: PbxStack, phone: Softphone) -> None:
    lab, ext = phone_stack.lab, "1002"
    camp, _ = await phone_stack.seed_campaign([])
    mark = phone.mark()
    client = await _login(phone_stack, camp, ext)
    await phone.wait_for_async("answered", ext, within=5, since=mark)
    assert await client.state() == "ready"
    assert len(phone_channels(lab, ext)) == 1

    # The agent hangs up the phone (BYE from the softphone).
    assert await asyncio.to_thread(phone.hangup, ext) == 1
    await wait_until(lambda: _state_is(client, "logged_out"), within=10, what="1002 logged out")
    await wait_until(lambda: _no_session_left(lab, ext), within=10, what="no channel of 1002")
    # Logged out for real: the dialer no longer holds the session (a new login is accepted).
    r = await client.post("/agent/ready")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_logged_in", r.text


async def test_login_twice_leaves_one_session_call(phone_stack: PbxStack, phone: Softphone) -> None:
    lab, ext = phone_stack.lab, "1003"
    camp, _ = await phone_stack.seed_campaign([])
    (user,) = await phone_stack.add_agents(camp, [ext])
    client = await phone_stack.agent_client(user)

    # Two logins at once (a double click; the API checks the state before either is acted on).
    first, second = await asyncio.gather(
        client.post("/agent/login", {"campaign_id": camp}),
        client.post("/agent/login", {"campaign_id": camp}),
    )
    codes = sorted([first.status_code, second.status_code])
    assert codes in ([202, 202], [202, 409]), (first.text, second.text)
    await wait_until(client.logged_in, within=20, what="1003 in its room")

    await wait_until(lambda: _settled(lab, ext, phone), within=15, what="one session call for 1003")
    assert len(phone_channels(lab, ext)) == 1
    assert len(room_members(lab, ext)) == 1
    assert await client.state() == "ready"

    # Logout, then log in again: still exactly one session call, then none after logout.
    assert (await client.post("/agent/logout")).status_code == 202
    await wait_until(lambda: _no_session_left(lab, ext), within=10, what="1003's call hung up")
    await client.login(camp)
    await wait_until(client.logged_in, within=20, what="1003 back in its room")
    assert len(phone_channels(lab, ext)) == 1 and len(room_members(lab, ext)) == 1
    assert (await client.post("/agent/logout")).status_code == 202
    await wait_until(lambda: _no_session_left(lab, ext), within=10, what="1003's call hung up")
    assert await client.state() == "logged_out"


async def _settled(lab: LabPbx, ext: str, phone: Softphone) -> bool:
    """One call of the seat up, alone in its room, and no other call ringing on the phone."""
    chans = phone_channels(lab, ext)
    ringing = [e for e in phone.events if e.extension == ext and e.kind == "ringing"]
    closed = [e for e in phone.events if e.extension == ext and e.kind in ("answered", "cancelled")]
    return len(chans) == 1 and room_members(lab, ext) == chans and len(ringing) == len(closed)
