// Agent screen: the browser phone (WebRTC). When the agent's profile extension is a browser
// seat (GET /api/v1/agent/phone says kind "browser"), the page registers it over SIP-over-
// WebSocket (sipws.js) and auto-answers the dialer's nailed-up session call; otherwise the
// agent uses a hardware softphone and this card stays hidden.
// Microphone and headset choice (remembered in localStorage), a level meter, a test tone,
// mute, and a clear state: registrado / en sala / audio activo / reconectando. A network blip
// (WebSocket reconnect) keeps the call (sipws.js re-INVITE); after a page reload the stale
// session call is ended cleanly and the agent logs in again (during a call agent.js does it by
// itself: the dialer keeps the call for a grace period and rejoins the seat into the same
// room). The call's outcome lives on the server either way.
import { $, API, api } from "./common.js";
import { SipPhone } from "./sipws.js";

const MIC_KEY = "marcador.phone.microfono";
const OUT_KEY = "marcador.phone.audifonos";
const LABELS = {
  off: ["Desconectado", "logged_out"],
  connecting: ["Conectando…", "paused"],
  registered: ["Registrado", "paused"],
  room: ["En sala", "reserved"],
  audio: ["Audio activo", "ready"],
  reconnecting: ["Reconectando…", "wrap_up"],
  failed: ["Sin registro", "in_call"],
};

const state = {
  phone: null,
  sip: "off",
  call: "none",
  packets: 0,
  lastPackets: 0,
  muted: false,
  meterStream: null,
  meterTimer: null,
};

function show() {
  let key = state.sip === "registered" ? "registered" : state.sip;
  if (state.sip === "registered" && ["confirmed", "answered", "resumed", "held"].includes(state.call)) {
    key = state.packets > state.lastPackets ? "audio" : "room";
  }
  if (state.sip === "unregistered") key = "off";
  const [text, pill] = LABELS[key] || LABELS.off;
  const pillEl = $("telefono-estado");
  pillEl.textContent = text;
  pillEl.className = `pill pill-${pill}`;
  document.body.dataset.phone = key;
  document.body.dataset.phonePackets = String(state.packets);
}

function constraints() {
  const mic = localStorage.getItem(MIC_KEY);
  return {
    audio: {
      deviceId: mic ? { exact: mic } : undefined,
      echoCancellation: true,
      noiseSuppression: true,
      autoGainControl: true,
    },
    video: false,
  };
}

async function micStream() {
  try {
    return await navigator.mediaDevices.getUserMedia(constraints());
  } catch (err) {
    if (localStorage.getItem(MIC_KEY)) {
      localStorage.removeItem(MIC_KEY); // a remembered device that is gone: the default
      return navigator.mediaDevices.getUserMedia(constraints());
    }
    throw err;
  }
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, key, withDefault) => {
    const chosen = localStorage.getItem(key) || "";
    select.replaceChildren();
    if (withDefault) select.append(new Option("Predeterminado", ""));
    for (const d of devices.filter((x) => x.kind === kind)) {
      select.append(new Option(d.label || `${kind} ${select.length + 1}`, d.deviceId));
    }
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : select.options[0]?.value || "";
  };
  fill($("telefono-microfono"), "audioinput", MIC_KEY, false);
  fill($("telefono-audifonos"), "audiooutput", OUT_KEY, true);
}

async function applyOutput() {
  const sink = localStorage.getItem(OUT_KEY) || "";
  const audio = $("telefono-audio");
  if (typeof audio.setSinkId === "function") {
    try {
      await audio.setSinkId(sink);
    } catch {
      localStorage.removeItem(OUT_KEY);
    }
  }
}

function startMeter(stream) {
  stopMeter();
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  state.meterStream = { ctx, stream };
  state.meterTimer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    const rms = Math.sqrt(sum / buf.length);
    $("telefono-nivel").value = Math.min(1, rms * 4);
  }, 100);
}

function stopMeter() {
  clearInterval(state.meterTimer);
  if (state.meterStream) {
    state.meterStream.ctx.close();
    state.meterStream = null;
  }
}

async function testTone() {
  const ctx = new AudioContext();
  const dest = ctx.createMediaStreamDestination();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.frequency.value = 440;
  gain.gain.value = 0.2;
  osc.connect(gain).connect(dest);
  const player = new Audio();
  player.srcObject = dest.stream;
  const sink = localStorage.getItem(OUT_KEY) || "";
  if (sink && typeof player.setSinkId === "function") await player.setSinkId(sink).catch(() => {});
  osc.start();
  await player.play().catch(() => {});
  document.body.dataset.phoneTone = "on";
  setTimeout(() => {
    osc.stop();
    ctx.close();
    player.srcObject = null;
    document.body.dataset.phoneTone = "done";
  }, 1000);
}

async function pollStats() {
  if (!state.phone) return;
  const s = await state.phone.stats();
  state.lastPackets = state.packets;
  state.packets = s.packetsReceived;
  $("telefono-detalle").textContent = state.phone.call
    ? `Paquetes recibidos ${s.packetsReceived} · enviados ${s.packetsSent}`
    : "";
  show();
}

async function start() {
  let info;
  try {
    info = await api("GET", `${API}/agent/phone`);
  } catch {
    return; // not an agent, or the API is down: agent.js shows that
  }
  if (!info || info.kind !== "browser") return;
  $("telefono").hidden = false;
  const ext = $("txt-extension");
  if (ext && !ext.value) ext.value = info.extension;
  const phone = new SipPhone({
    wsUrl: info.ws_url,
    domain: info.domain,
    extension: info.extension,
    password: info.password,
    getStream: micStream,
  });
  state.phone = phone;
  window.marcadorPhone = {
    phone,
    state: () => document.body.dataset.phone,
    stats: () => phone.stats(),
    drop: () => phone.dropTransport(),
  };
  phone.addEventListener("state", (ev) => {
    state.sip = ev.detail.state;
    show();
  });
  phone.addEventListener("call", (ev) => {
    state.call = ev.detail.state;
    if (ev.detail.state === "ended") {
      state.packets = 0;
      state.lastPackets = 0;
      $("telefono-audio").srcObject = null;
      setMuted(false);
    }
    document.body.dataset.phoneCall = ev.detail.state;
    document.body.dataset.phoneCallReason = ev.detail.reason || "";
    show();
  });
  phone.addEventListener("track", async (ev) => {
    const audio = $("telefono-audio");
    audio.srcObject = ev.detail.stream;
    await applyOutput();
    audio.play().catch(() => {});
  });
  $("telefono-microfono").addEventListener("change", async (ev) => {
    localStorage.setItem(MIC_KEY, ev.target.value);
    const stream = await micStream();
    startMeter(stream);
    await phone.replaceStream(stream.clone());
  });
  $("telefono-audifonos").addEventListener("change", async (ev) => {
    localStorage.setItem(OUT_KEY, ev.target.value);
    await applyOutput();
  });
  $("telefono-tono").addEventListener("click", () => testTone());
  $("telefono-silencio").addEventListener("click", () => setMuted(!state.muted));
  try {
    const stream = await micStream(); // asks for the permission once; labels appear after it
    startMeter(stream);
    await listDevices();
  } catch {
    $("telefono-detalle").textContent = "Sin acceso al micrófono: revise el permiso del navegador.";
  }
  navigator.mediaDevices.addEventListener?.("devicechange", () => listDevices());
  setInterval(pollStats, 1000);
  window.addEventListener("pagehide", () => {
    // A reload keeps the dialog (sessionStorage) for the re-INVITE; only close the socket.
    phone.wanted = false;
    if (phone.ws) phone.ws.close();
  });
  await phone.start();
}

function setMuted(muted) {
  state.muted = muted;
  if (state.phone) state.phone.setMuted(muted);
  const btn = $("telefono-silencio");
  btn.setAttribute("aria-pressed", String(muted));
  btn.textContent = muted ? "Activar micrófono" : "Silenciar micrófono";
  document.body.dataset.phoneMuted = String(muted);
}

start();
