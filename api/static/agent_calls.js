// Agent screen: call controls (issue 15) - hang up, mute / unmute, hold / resume, DTMF.
// Kept apart from agent.js: it learns the agent's live state from the "marcador:agent-me"
// event agent.js dispatches on each refresh, and asks for a refresh with
// "marcador:agent-refresh" after each action. API: POST /api/v1/agent/call/<action>.
import { $, API, ApiFailure, api, messageEs, toast } from "./common.js";

const ERRORS_ES = {
  not_in_call: "No hay una llamada en curso.",
  not_logged_in: "Conéctese a una campaña primero.",
  stale_call: "Esa llamada ya terminó.",
  call_gone: "La llamada ya terminó.",
  already_muted: "Su micrófono ya está silenciado.",
  not_muted: "Su micrófono no está silenciado.",
  already_on_hold: "El cliente ya está en espera.",
  not_on_hold: "El cliente no está en espera.",
  invalid_digits: "Marque solo 0-9, * y #.",
  agent_channel_unknown: "No se encontró su canal en la sala. Intente de nuevo.",
};

const OK_ES = {
  hangup: "Llamada colgada",
  mute: "Micrófono silenciado",
  unmute: "Micrófono activo",
  hold: "Cliente en espera",
  resume: "Cliente de vuelta en la llamada",
  dtmf: "Tonos enviados",
};

const calls = { me: null, busy: false, holdTimer: null };

function inCall() {
  const s = calls.me && calls.me.state;
  return !!s && s.state === "in_call" && !!s.attempt;
}

function errorEs(err) {
  if (err instanceof ApiFailure && ERRORS_ES[err.code]) return ERRORS_ES[err.code];
  return messageEs(err);
}

async function control(action, body) {
  if (!inCall() || calls.busy) return;
  calls.busy = true;
  render();
  try {
    await api("POST", `${API}/agent/call/${action}`, { attempt: calls.me.state.attempt, ...(body || {}) });
    toast(OK_ES[action], "ok", 2000);
  } catch (err) {
    toast(errorEs(err), "error");
  } finally {
    calls.busy = false;
    document.dispatchEvent(new CustomEvent("marcador:agent-refresh"));
  }
}

function hangup() {
  if (inCall() && window.confirm("¿Colgar al cliente? Usted sigue en su sala y pasa a tipificar.")) {
    control("hangup");
  }
}

function toggleMute() {
  if (inCall()) control(calls.me.state.muted ? "unmute" : "mute");
}

function toggleHold() {
  if (inCall()) control(calls.me.state.on_hold_since ? "resume" : "hold");
}

function sendDtmf() {
  const input = $("dtmf-digitos");
  const digits = input.value.replace(/\s+/g, "");
  if (!digits) {
    input.focus();
    return;
  }
  if (!/^[0-9*#]{1,32}$/.test(digits)) {
    toast(ERRORS_ES.invalid_digits, "error");
    return;
  }
  input.value = "";
  control("dtmf", { digits });
}

function holdClock() {
  const since = calls.me && calls.me.state.on_hold_since;
  const box = $("espera-tiempo");
  if (!since || !inCall()) {
    box.hidden = true;
    return;
  }
  const secs = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  box.hidden = false;
  box.textContent = `En espera ${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
}

function render() {
  const bar = $("controles-llamada");
  if (!bar) return;
  const live = inCall();
  bar.hidden = !live;
  if (!live) return;
  const st = calls.me.state;
  const muteBtn = $("btn-silenciar");
  muteBtn.textContent = "";
  muteBtn.append(st.muted ? "Activar micrófono " : "Silenciar ", kbd("F6"));
  muteBtn.setAttribute("aria-pressed", st.muted ? "true" : "false");
  muteBtn.classList.toggle("btn-warn", !!st.muted);
  const holdBtn = $("btn-espera");
  holdBtn.textContent = "";
  holdBtn.append(st.on_hold_since ? "Retomar " : "En espera ", kbd("F7"));
  holdBtn.setAttribute("aria-pressed", st.on_hold_since ? "true" : "false");
  holdBtn.classList.toggle("btn-warn", !!st.on_hold_since);
  for (const id of ["btn-silenciar", "btn-espera", "btn-colgar", "btn-dtmf"]) {
    $(id).disabled = calls.busy;
  }
  holdClock();
}

function kbd(text) {
  const k = document.createElement("kbd");
  k.textContent = text;
  return k;
}

document.addEventListener("marcador:agent-me", (ev) => {
  calls.me = ev.detail;
  render();
});
setInterval(holdClock, 1000);

if ($("controles-llamada")) {
  $("btn-silenciar").addEventListener("click", toggleMute);
  $("btn-espera").addEventListener("click", toggleHold);
  $("btn-colgar").addEventListener("click", hangup);
  $("btn-dtmf").addEventListener("click", sendDtmf);
  $("dtmf-digitos").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      sendDtmf();
    }
  });
}

document.addEventListener("keydown", (ev) => {
  if (!inCall()) return;
  const actions = { F6: toggleMute, F7: toggleHold, F8: hangup, F9: () => $("dtmf-digitos").focus() };
  const run = actions[ev.key];
  if (run) {
    ev.preventDefault();
    run();
  }
});
