// Agent screen: call controls (issue 15) - hang up, mute / unmute, hold / resume, DTMF,
// blind transfer to a ready agent, transfer out (supervisor / allowed external number: blind,
// or attended: consult, then complete or cancel), and the manual dial card.
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
  agent_reconnecting: "Su teléfono se está reconectando; retome la llamada cuando vuelva.",
  invalid_digits: "Marque solo 0-9, * y #.",
  agent_channel_unknown: "No se encontró su canal en la sala. Intente de nuevo.",
  target_unavailable: "Ese asesor no está disponible para recibir la llamada.",
  agent_busy: "No puede marcar ahora: termine la llamada o la tipificación.",
  preview_pending: "Llame o salte primero el cliente de la vista previa.",
  lead_not_in_campaign: "Ese cliente no es de su campaña.",
  lead_busy: "Ese cliente está siendo llamado en este momento.",
  not_dialable: "Ese cliente no tiene un teléfono marcable.",
  campaign_not_running: "La campaña no está activa.",
  transfer_in_progress: "Ya hay una transferencia en curso.",
  number_not_allowed: "Ese número no está en la lista de números permitidos.",
  target_unreachable: "No se pudo llamar al destino.",
  not_consulting: "No hay una consulta en curso.",
  consult_not_answered: "El destino aún no contesta.",
  unknown_target: "Destino de transferencia no válido.",
};

const OK_ES = {
  hangup: "Llamada colgada",
  mute: "Micrófono silenciado",
  unmute: "Micrófono activo",
  hold: "Cliente en espera",
  resume: "Cliente de vuelta en la llamada",
  dtmf: "Tonos enviados",
  transfer: "Llamada transferida",
  transfer_out: "Transfiriendo: el cliente espera mientras contestan",
  consult: "Llamando para consultar: el cliente queda en espera",
  "consult/complete": "Transferencia completada",
  "consult/cancel": "Consulta cancelada: el cliente vuelve con usted",
};

const TRANSFER_STATE_ES = {
  transferring: "Transfiriendo a",
  consult_ringing: "Llamando para consultar a",
  consulting: "En consulta con",
};

const calls = { me: null, busy: false, holdTimer: null };

function inCall() {
  const s = calls.me && calls.me.state;
  return !!s && s.state === "in_call" && !!s.attempt;
}

// A manual / preview call still ringing: only "Colgar" (it cancels the call).
function ringing() {
  const s = calls.me && calls.me.state;
  return !!s && s.state === "reserved" && !!s.attempt;
}

function errorEs(err) {
  if (err instanceof ApiFailure && ERRORS_ES[err.code]) return ERRORS_ES[err.code];
  return messageEs(err);
}

async function control(action, body) {
  if (!(inCall() || (action === "hangup" && ringing())) || calls.busy) return;
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
  if ((inCall() || ringing()) && window.confirm("¿Colgar al cliente? Usted sigue en su sala y pasa a tipificar.")) {
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
  renderManual();
  const bar = $("controles-llamada");
  if (!bar) return;
  if (inCall() && bar.hidden) loadTargets();
  const live = inCall();
  bar.hidden = !live && !ringing();
  for (const node of bar.children) {
    if (node.id !== "btn-colgar") node.hidden = !live;
  }
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
  for (const id of ["btn-silenciar", "btn-espera", "btn-colgar", "btn-dtmf", "btn-transferir"]) {
    $(id).disabled = calls.busy;
  }
  renderTransferOut(st);
  holdClock();
}

function kbd(text) {
  const k = document.createElement("kbd");
  k.textContent = text;
  return k;
}

// ------------------------------------------------------------------ transfer
async function loadTargets() {
  const sel = $("transferir-a");
  let targets = [];
  try {
    targets = await api("GET", `${API}/agent/transfer-targets`);
  } catch {
    targets = [];
  }
  const keep = sel.value;
  sel.textContent = "";
  sel.append(new Option("Transferir a…", ""));
  for (const t of targets) {
    const label = `${t.full_name}${t.extension ? ` (${t.extension})` : ""}${t.state === "ready" ? "" : " · ocupado"}`;
    const opt = new Option(label, String(t.id));
    opt.disabled = t.state !== "ready";
    sel.append(opt);
  }
  sel.value = keep;
}

function transfer() {
  const sel = $("transferir-a");
  if (!inCall()) return;
  if (!sel.value) {
    loadTargets();
    sel.focus();
    return;
  }
  const name = sel.options[sel.selectedIndex].text;
  if (window.confirm(`¿Transferir la llamada a ${name}? El cliente, su historial y la tipificación pasan a ese asesor.`)) {
    control("transfer", { target_agent_id: Number(sel.value) });
  }
}

// ------------------------------------------------------------------ transfer out
// Built here (not in agent.html) so the page's markup stays as it is: a select of supervisors
// and allowed external numbers, "Transferir" (blind), "Consultar" (attended), and while
// consulting "Completar transferencia" / "Cancelar consulta".
function button(id, text, key, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.id = id;
  b.className = "btn";
  b.append(`${text} `, kbd(key));
  b.addEventListener("click", onClick);
  return b;
}

function ensureTransferOut() {
  const bar = $("controles-llamada");
  if (!bar || $("transferir-fuera")) return;
  const sel = document.createElement("select");
  sel.id = "transferir-fuera";
  sel.setAttribute("aria-label", "Transferir fuera de la campaña");
  sel.addEventListener("focus", loadDestinations);
  const state = document.createElement("span");
  state.id = "estado-transferencia";
  state.className = "badge";
  state.setAttribute("role", "status");
  bar.append(
    sel,
    button("btn-transferir-fuera", "Transferir", "⇧F10", () => transferOut("transfer_out")),
    button("btn-consultar", "Consultar", "F11", () => transferOut("consult")),
    button("btn-completar", "Completar transferencia", "⇧F11", completeConsult),
    button("btn-cancelar-consulta", "Cancelar consulta", "Esc", cancelConsult),
    state,
  );
}

async function loadDestinations() {
  const sel = $("transferir-fuera");
  let dest = { supervisors: [], external: [] };
  try {
    dest = await api("GET", `${API}/agent/transfer-destinations`);
  } catch {
    /* keep the empty list */
  }
  const keep = sel.value;
  sel.textContent = "";
  sel.append(new Option("Transferir fuera…", ""));
  const groups = [
    ["Supervisores", dest.supervisors, (d) => `${d.label}${d.extension ? ` (${d.extension})` : ""}`],
    ["Números permitidos", dest.external, (d) => d.label],
  ];
  for (const [title, items, label] of groups) {
    if (!items.length) continue;
    const group = document.createElement("optgroup");
    group.label = title;
    for (const d of items) group.append(new Option(label(d), `${d.kind}:${d.id}`));
    sel.append(group);
  }
  sel.value = keep;
}

function transferOut(action) {
  const sel = $("transferir-fuera");
  if (!inCall() || (calls.me.state.transfer_state || "")) return;
  if (!sel.value) {
    loadDestinations();
    sel.focus();
    return;
  }
  const [kind, id] = sel.value.split(":");
  const name = sel.options[sel.selectedIndex].text;
  const ask =
    action === "consult"
      ? `¿Consultar con ${name}? El cliente queda en espera mientras hablan.`
      : `¿Transferir la llamada a ${name}? Cuando conteste, usted sale de la llamada y la tipifica.`;
  if (window.confirm(ask)) control(action, { target_kind: kind, target_id: Number(id) });
}

function completeConsult() {
  if (inCall() && calls.me.state.transfer_state === "consulting") control("consult/complete");
}

function cancelConsult() {
  const ts = inCall() && calls.me.state.transfer_state;
  if (ts === "consulting" || ts === "consult_ringing") control("consult/cancel");
}

function renderTransferOut(st) {
  ensureTransferOut();
  if (!$("transferir-fuera")) return;
  const ts = st.transfer_state || "";
  const consult = ts === "consulting" || ts === "consult_ringing";
  $("transferir-fuera").hidden = !!ts;
  $("btn-transferir-fuera").hidden = !!ts;
  $("btn-consultar").hidden = !!ts;
  $("btn-completar").hidden = ts !== "consulting";
  $("btn-cancelar-consulta").hidden = !consult;
  const badge = $("estado-transferencia");
  badge.hidden = !ts;
  badge.textContent = ts ? `${TRANSFER_STATE_ES[ts] || ts} ${st.transfer_label || ""}`.trim() : "";
  for (const id of ["btn-transferir-fuera", "btn-consultar", "btn-completar", "btn-cancelar-consulta"]) {
    $(id).disabled = calls.busy;
  }
  // hold / resume and the agent transfer wait while a transfer is under way
  $("btn-espera").disabled = calls.busy || !!ts;
  $("btn-transferir").disabled = calls.busy || !!ts;
}

// ------------------------------------------------------------------ manual dial
function canDial() {
  const s = calls.me && calls.me.state;
  if (!s || calls.me.call || s.preview_lead) return false;
  return s.state === "ready" || (s.state === "paused" && s.pause_code !== "connecting");
}

function renderManual() {
  const card = $("llamada-manual");
  if (card) card.hidden = !canDial();
}

async function manualDial() {
  const input = $("manual-cliente");
  const box = $("error-llamada-manual");
  const leadId = Number(input.value.trim());
  box.hidden = true;
  if (!canDial() || !Number.isInteger(leadId) || leadId <= 0) {
    input.focus();
    return;
  }
  try {
    await api("POST", `${API}/agent/call/dial`, { lead_id: leadId });
    input.value = "";
    toast("Llamando al cliente…", "ok", 2500);
  } catch (err) {
    const d = (err instanceof ApiFailure && err.details) || {};
    box.textContent = err.code === "not_eligible" && d.summary_es ? `No se puede llamar: ${d.summary_es}` : errorEs(err);
    box.hidden = false;
  } finally {
    document.dispatchEvent(new CustomEvent("marcador:agent-refresh"));
  }
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
  $("btn-transferir").addEventListener("click", transfer);
  $("transferir-a").addEventListener("focus", loadTargets);
  $("form-llamada-manual").addEventListener("submit", (ev) => {
    ev.preventDefault();
    manualDial();
  });
  $("dtmf-digitos").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      sendDtmf();
    }
  });
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "F4" && canDial()) {
    ev.preventDefault();
    $("manual-cliente").focus();
    return;
  }
  if (ev.key === "F8" && ringing()) {
    ev.preventDefault();
    hangup();
    return;
  }
  if (!inCall()) return;
  const actions = {
    F6: toggleMute,
    F7: toggleHold,
    F8: hangup,
    F9: () => $("dtmf-digitos").focus(),
    F10: ev.shiftKey ? () => transferOut("transfer_out") : transfer,
    F11: ev.shiftKey ? completeConsult : () => transferOut("consult"),
    Escape: cancelConsult,
  };
  if (ev.key === "Escape" && !(calls.me.state.transfer_state || "")) return;
  const run = actions[ev.key];
  if (run) {
    ev.preventDefault();
    run();
  }
});
