"""The lab PBX itself: it loads the shipped files cleanly, and each lab number behaves as
``dialer.lab_pstn.BEHAVIOURS`` says (AMI level, all numbers at once)."""

from __future__ import annotations

import asyncio
import re
import time

from ami_bridge import dialplan as dp
from ami_bridge.simulator import AmiTestClient
from dialer.lab_pstn import BEHAVIOURS, LAB_TRUNK, lab_number
from dialer.pbx_lab import OVERLAY, LabPbx


def test_lab_loads_the_shipped_files_without_warnings(lab_pbx: LabPbx) -> None:
    problems = lab_pbx.log_problems()
    assert problems == [], "\n".join(problems)
    assert "app_amd.so" in lab_pbx.cli("module show like app_amd")
    # start-asterisk copies the overlay's [options]: AMD needs silence frames on Local channels
    options = (lab_pbx.pbx_dir / "asterisk.conf").read_text(encoding="utf-8")
    assert re.search(r"^transmit_silence = yes$", options, re.MULTILINE)


def test_the_dialplan_file_matches_the_behaviour_table() -> None:
    text = (OVERLAY / "extensions_lab.conf").read_text(encoding="utf-8")
    block = text.split("[marcador-lab-behaviour]", 1)[1].split("\n[", 1)[0]
    for digit, behaviour in BEHAVIOURS.items():
        m = re.search(
            rf"^exten => {digit},1,NoOp\(LAB {behaviour.name}\)\n((?: same => .*\n)+)",
            block,
            re.MULTILINE,
        )
        assert m, f"digit {digit} ({behaviour.name}) missing from extensions_lab.conf"
        assert f"{behaviour.application}(" in m.group(1), (digit, behaviour.application)


async def _originate(ami: AmiTestClient, number: str) -> tuple[str, str, str]:
    attempt = f"lab-{time.time_ns()}-{number[-1]}"
    aid = ami.send(
        "Originate",
        ("Channel", LAB_TRUNK.format(number=number)),
        ("Context", dp.CTX_OUTBOUND),
        ("Exten", dp.EXTEN_START),
        ("Priority", "1"),
        ("Timeout", "6000"),
        ("ChannelId", attempt),
        ("Variable", f"{dp.VAR_ATTEMPT}={attempt}"),
        ("Variable", f"{dp.VAR_AMD}={dp.AMD_HANGUP}"),
        ("Variable", f"{dp.VAR_CONNECT_TIMEOUT}=1"),
        ("Async", "true"),
    )
    resp = await ami.event("OriginateResponse", within=30, ActionID=aid)
    amd = ""
    if resp.get("Response") == "Success":
        var = await ami.event(
            "VarSet", within=30, Channel=resp.get("Channel") or "", Variable=dp.VAR_AMDSTATUS
        )
        amd = var.get("Value") or ""
    return resp.get("Response") or "", resp.get("Reason") or "", amd


async def test_every_lab_number_behaves_as_its_last_digit_says(lab_ami: AmiTestClient) -> None:
    numbers = {d: lab_number(d, 1) for d in BEHAVIOURS}
    results = dict(
        zip(
            numbers,
            await asyncio.gather(*(_originate(lab_ami, n) for n in numbers.values())),
            strict=True,
        )
    )
    for digit, behaviour in BEHAVIOURS.items():
        response, _, _ = results[digit]
        assert (response == "Success") == behaviour.answers, (digit, results[digit])
    assert results["2"][1] == "5"  # busy
    assert results["3"][1] == "8"  # congestion
    assert results["4"][1] == "3"  # no answer within the Timeout
    assert results["6"][2] == "HUMAN"
    assert results["7"][2] == "MACHINE"
