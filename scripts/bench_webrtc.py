"""Benchmark of the browser phone (issue 15): from the customer's answer to audio at the browser.

Runs on a lab Asterisk 22 (:class:`dialer.pbx_lab.LabPbx`, its own run directory and free ports)
with the real ``marcador dialer`` + ``marcador api`` (``tests/pbx/stack.py``, agent channel
``PJSIP/{extension}``, the lab's WebRTC settings) and one agent on browser seat 1101 in Debian's
headless Chromium (fake microphone): the agent page registers over SIP-over-WebSocket and
auto-answers its nailed-up session call. Then, one call at a time, a lab talker customer (plays a
700 Hz tone from its answer on) is released, connected to the agent, measured, and hung up; the
agent's 1 s wrap-up ends on its own and the next lead is released.

* answer: the attempt's ``answered_at`` as the dialer recorded it (wall clock of this host);
* audio at the browser: the first 5 ms poll of an AnalyserNode on the page's remote stream
  (the ``<audio>`` of the phone card) whose RMS passes a threshold, ``Date.now()`` of the page.

Both clocks are this machine's wall clock. The figure therefore covers the dialer's connect
decision, the Redirect into the agent's room, ConfBridge mixing, SRTP to the browser and the
browser's jitter buffer/decoder.

Usage::

    nice -n 10 .venv/bin/python scripts/bench_webrtc.py              # table, 50 calls
    nice -n 10 .venv/bin/python scripts/bench_webrtc.py --json       # one JSON object last
    .venv/bin/python scripts/bench_webrtc.py --calls 3 --json        # smoke

Progress goes to stderr. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dialer.domain.outcomes import CampaignStatus, DialMode  # noqa: E402
from dialer.lab_pstn import talker_number  # noqa: E402
from dialer.pbx_lab import LabPbx, bundle_present  # noqa: E402
from tests.pbx.phones import set_campaign_status  # noqa: E402
from tests.pbx.stack import PASSWORD, PbxStack, wait_until  # noqa: E402

SEAT = "1101"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

#: Watches the phone card's remote stream; window.__audioAt is the first loud poll after arming.
PROBE_JS = """
if (!window.__probe) {
  const audio = document.getElementById('telefono-audio');
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(audio.srcObject);
  const an = ctx.createAnalyser();
  an.fftSize = 256;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  window.__probe = setInterval(() => {
    if (!window.__armed || window.__audioAt) return;
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    if (Math.sqrt(sum / buf.length) > 0.02) window.__audioAt = Date.now();
  }, 5);
}
window.__audioAt = 0;
window.__armed = true;
return 'armed';
"""


DISPOSITION = {"code": "no_interesado", "details": {"reason": "precio"}}


async def _wrap_up(api: Any) -> bool:
    return bool(await api.state() == "wrap_up")


def say(msg: str) -> None:
    print(f"[bench_webrtc {time.strftime('%X')}] {msg}", file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def _data(driver: Any, name: str) -> Any:
    return driver.execute_script("return document.body.dataset[arguments[0]] || null;", name)


async def _page(driver: Any, what: str, within: float, probe: Any) -> Any:
    async def check() -> Any:
        return await asyncio.to_thread(probe, driver)

    return await wait_until(check, within=within, what=what)


async def run(lab: LabPbx, tmp: Path, calls: int) -> dict[str, Any]:
    from tests.web.browser import FAKE_MEDIA, make_driver, sign_in

    stack = PbxStack(
        lab, tmp / "stack", virtual_agents=False, extra_env=lab.webrtc_env(), log_level="warning"
    )
    stack.start()
    driver = make_driver(CHROMIUM, CHROMEDRIVER, tmp / "profile", FAKE_MEDIA)
    latencies: list[float] = []
    try:
        camp, _ = await stack.seed_campaign(
            [], mode=DialMode.PROGRESSIVE, status=CampaignStatus.RUNNING, wrap_up_seconds=1
        )
        (user,) = await stack.add_agents(camp, [SEAT])
        await asyncio.to_thread(
            sign_in, driver, f"http://127.0.0.1:{stack.api_port}", user.username, PASSWORD
        )
        await _page(driver, "registered", 30, lambda d: _data(d, "phone") == "registered")
        await asyncio.to_thread(lambda: driver.find_element("id", "btn-conectar").click())
        await _page(
            driver,
            "in the room and ready",
            45,
            lambda d: _data(d, "phone") in ("room", "audio") and _data(d, "state") == "ready",
        )
        api = await stack.agent_client(user)  # the same agent over HTTP: dispositions
        say(f"agent {SEAT} in its room from the browser; {calls} calls follow")
        for i in range(calls):
            await asyncio.to_thread(driver.execute_script, PROBE_JS)
            number = talker_number(i + 1)
            await stack.add_leads(camp, [number])
            await _page(
                driver,
                f"audio of call {i + 1}",
                60,
                lambda d: d.execute_script("return window.__audioAt || 0;"),
            )
            audio_at = float(driver.execute_script("return window.__audioAt;")) / 1000.0
            attempt = await stack.attempt_of(camp, number)
            assert attempt is not None and attempt.answered_at is not None
            answered = attempt.answered_at
            if answered.tzinfo is None:
                answered = answered.replace(tzinfo=UTC)
            latencies.append((audio_at - answered.timestamp()) * 1000.0)
            stack.hangup_customer(number)
            await stack.wait_final(camp, [number], within=30)
            await wait_until(
                lambda: _wrap_up(api), within=30, what="wrap-up after the customer hung up"
            )
            r = await api.post("/agent/disposition", {"attempt": attempt.uuid, **DISPOSITION})
            assert r.status_code == 200, r.text
            await _page(driver, "ready again", 30, lambda d: _data(d, "state") == "ready")
            if (i + 1) % 10 == 0:
                say(f"{i + 1} calls, last {latencies[-1]:.0f} ms")
        await set_campaign_status(stack, camp, CampaignStatus.PAUSED)
    finally:
        driver.quit()
        await stack.aclose()
    return {
        "calls": len(latencies),
        "answer_to_browser_audio_p50_ms": round(statistics.median(latencies), 1),
        "answer_to_browser_audio_p99_ms": round(_pct(latencies, 0.99), 1),
        "answer_to_browser_audio_min_ms": round(min(latencies), 1),
        "answer_to_browser_audio_max_ms": round(max(latencies), 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count() or 0,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def table(r: dict[str, Any]) -> str:
    rows = [
        ("calls", str(r["calls"])),
        ("answer -> audio at the browser p50", f"{r['answer_to_browser_audio_p50_ms']} ms"),
        ("answer -> audio at the browser p99", f"{r['answer_to_browser_audio_p99_ms']} ms"),
        (
            "min / max",
            f"{r['answer_to_browser_audio_min_ms']} / {r['answer_to_browser_audio_max_ms']} ms",
        ),
        ("load average (1 min) / cpus", f"{r['load_avg_1m']} / {r['cpus']}"),
    ]
    out = ["| metric | value |", "|---|---|"]
    out += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(out)


async def _bench(calls: int, run_dir: Path) -> dict[str, Any]:
    say(f"starting a lab PBX in {run_dir}")
    lab = LabPbx.start(run_dir / "lab", progress=say)
    try:
        return await run(lab, run_dir, calls)
    finally:
        say("stopping the lab PBX")
        lab.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Browser phone: customer answer -> browser audio")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--calls", type=int, default=50, help="calls, one at a time (default 50)")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = ap.parse_args(argv)
    if args.calls < 1:
        ap.error("--calls must be >= 1")
    if not bundle_present():
        print("no Asterisk bundle (see dialer/pbx_lab.py): nothing to measure", file=sys.stderr)
        return 2
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            print(f"{path} is missing (apt-get install chromium chromium-driver)", file=sys.stderr)
            return 2
    run_dir = Path(tempfile.mkdtemp(prefix="marcador-bench-webrtc-"))
    try:
        result = asyncio.run(
            asyncio.wait_for(_bench(args.calls, run_dir), 300.0 + 20.0 * args.calls)
        )
    finally:
        if args.keep:
            say(f"run directory kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
