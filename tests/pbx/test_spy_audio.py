"""Supervisor listen reaching the supervisor's phone, on the real PBX with SIP phones
(issue 14 defects 11 and 12).

The agent (seat 1009) and the supervisor (2001) are ``marcador softphone`` instances
registered on the lab; the dialer logs the agent in through ``PJSIP/1009``. While the agent
talks with a customer, the agent's phone plays a 1000 Hz tone; the supervisor asks to listen:
``ChanSpy`` in ``marcador-spy,listen`` attaches to ``PJSIP/1009-…`` (ChanSpyStart) and the
supervisor's recording holds the agent's tone. When the customer hangs up, the dialer hangs the
supervisor's call up (remote BYE) while the agent's phone stays in its room.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from ami_bridge.simulator import AmiTestClient
from dialer.db.models import Role
from dialer.domain.outcomes import CallOutcome
from dialer.lab_pstn import lab_number
from dialer.pbx_lab import LabPbx
from dialer.softphone import Extension, Softphone, SoftphoneConfig, wav_rms, write_tone_wav
from tests.pbx.stack import PbxStack, wait_until
from tests.pbx.test_softphone import MIN_RMS, _free_udp_block, goertzel

pytestmark = pytest.mark.asyncio(loop_scope="module")

AGENT, SUPERVISOR = "1009", "2001"
AGENT_TONE_HZ = 1000.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone_stack(
    lab_pbx: LabPbx, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PbxStack]:
    tmp = tmp_path_factory.mktemp("pbx-spy-audio")
    stack = PbxStack(lab_pbx, tmp, virtual_agents=False).start()
    try:
        yield stack
    finally:
        await stack.aclose()


def _phone(lab: LabPbx, ext: str, tmp: Path, *, play: Path | None = None) -> Softphone:
    low, high = _free_udp_block(20)
    return Softphone(
        SoftphoneConfig(
            extensions=(Extension(ext, lab.agent_passwords[ext], port=lab.ports.sip),),
            answer_delay=0.2,
            rtp_port_low=low,
            rtp_port_high=high,
            bind_ip="127.0.0.1",
            play=play,
            record_dir=tmp / f"rec-{ext}",
        )
    )


@pytest.fixture(scope="module")
def phones(phone_stack: PbxStack) -> Iterator[tuple[Softphone, Softphone]]:
    tmp = phone_stack.tmp
    tone = tmp / "agent-tone.wav"
    write_tone_wav(tone, 120.0, AGENT_TONE_HZ)
    agent = _phone(phone_stack.lab, AGENT, tmp, play=tone)
    sup = _phone(phone_stack.lab, SUPERVISOR, tmp)
    agent.start()
    try:
        sup.start()
        try:
            yield agent, sup
        finally:
            sup.stop()
    finally:
        agent.stop()


async def test_supervisor_hears_the_agent_and_the_spy_ends_with_the_call(
    phone_stack: PbxStack, phones: tuple[Softphone, Softphone], module_ami: AmiTestClient
) -> None:
    stack, ami = phone_stack, module_ami
    agent_phone, sup_phone = phones
    customer = lab_number("0", 1101)
    camp, _ = await stack.seed_campaign([], max_attempts=1, wrap_up_seconds=60)
    (agent_user,) = await stack.add_agents(camp, [AGENT])
    (sup_user,) = await stack.add_agents(camp, [SUPERVISOR], role=Role.SUPERVISOR)
    (agent,) = await stack.login_agents(camp, [agent_user])
    sup = await stack.agent_client(sup_user)
    start = len(ami.messages)
    await stack.add_leads(camp, [customer])

    async def on_call() -> bool:
        row = await stack.attempt_of(camp, customer)
        return row is not None and await stack.agent_on([agent], row.uuid) is not None

    await wait_until(on_call, within=30, what="the agent on a call")

    mark = sup_phone.mark()
    r = await sup.post(f"/agents/{agent_user.id}/spy", {"mode": "listen"})
    assert r.status_code == 202 and r.json()["status"] == "ringing", r.text
    await sup_phone.wait_for_async("answered", SUPERVISOR, within=15, since=mark)
    spy_start = await ami.wait_for(
        lambda m: (
            m.event == "ChanSpyStart"
            and (m.get("SpyeeChannel") or "").startswith(f"PJSIP/{AGENT}-")
        ),
        within=15,
        start=start,
    )
    assert (spy_start.get("SpyerChannel") or "").startswith(f"PJSIP/{SUPERVISOR}-")

    # At least 2 s of what the supervisor hears is on disk before the customer leaves.
    rec_dir = stack.tmp / f"rec-{SUPERVISOR}"

    async def heard() -> bool:
        files = list(rec_dir.glob("*.wav"))
        return bool(files) and max(f.stat().st_size for f in files) > 2 * 16000

    await wait_until(heard, within=20, what="the supervisor's phone recording audio")
    assert stack.hangup_customer(customer)
    ended = await sup_phone.wait_for_async("ended", SUPERVISOR, within=15, since=mark)
    assert ended.reason == "remote_bye", ended.reason

    assert ended.recording is not None
    assert wav_rms(ended.recording) > MIN_RMS
    tone = goertzel(ended.recording, AGENT_TONE_HZ)
    assert tone > 5 * goertzel(ended.recording, 440.0), tone

    async def wrapping() -> bool:
        return await agent.state() == "wrap_up"

    await wait_until(wrapping, within=15, what="the agent in wrap-up")
    assert agent_phone.active_calls(AGENT)  # the agent's nailed-up call is still up
    (row,) = await stack.attempts(camp)
    assert row.outcome is CallOutcome.ANSWERED_CONNECTED
