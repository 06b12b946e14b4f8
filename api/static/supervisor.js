// Supervisor dashboard: one panel per campaign with live counters (GET /campaigns/{id}/live),
// the day's charts (GET /campaigns/{id}/today), controls (start/pause, mode and caps, force
// pause / log out, listen / whisper / barge) and live updates over SSE.
import { abandonChart, callsChart } from "./charts.js";
import {
  $,
  AGENT_STATES,
  API,
  ApiFailure,
  CAMPAIGN_STATUS,
  DIAL_MODES,
  OUTCOMES,
  PAUSE_FALLBACK,
  api,
  clear,
  el,
  fmtDuration,
  fmtTime,
  fmtWhen,
  liveEvents,
  loadClock,
  messageEs,
  pacingReason,
  pct,
  serverClock,
  setZone,
  throttle,
  toast,
} from "./common.js";

const STATE_ORDER = ["ready", "reserved", "in_call", "wrap_up", "paused", "logged_out"];
const LIVE_MIN_MS = 750; // event-driven /live refreshes: at most one per 0.75 s per campaign
const POLL_MS = 5000;
const TODAY_MS = 30000;
const SPY_MODES = [
  ["listen", "Escuchar"],
  ["whisper", "Susurrar"],
  ["barge", "Intervenir"],
];

const panels = new Map(); // campaign id -> panel state
const agentNames = new Map();
let spyAvailable = true;
// This supervisor's spy (one at a time: a new one replaces it): {agentId, spy, mode} or null.
let mySpy = null;

// ------------------------------------------------------------------ panel building
function kpi(name, label) {
  return el("div", { class: "kpi", dataset: { kpi: name } }, el("div", { class: "kpi-label" }, label), el("div", { class: "kpi-value" }, "–"), el("div", { class: "kpi-sub muted small" }, ""));
}

function setKpi(panel, name, value, sub, level) {
  const node = panel.root.querySelector(`[data-kpi="${name}"]`);
  if (!node) return;
  node.querySelector(".kpi-value").textContent = value;
  node.querySelector(".kpi-sub").textContent = sub || "";
  node.dataset.value = String(value);
  node.classList.remove("level-ok", "level-warning", "level-danger");
  if (level) node.classList.add(`level-${level}`);
}

function buildPanel(campaign) {
  const id = campaign.id;
  const modeSelect = el("select", { class: "ctl-mode", "aria-label": "Modo de marcación" }, Object.entries(DIAL_MODES).map(([v, l]) => el("option", { value: v }, l)));
  const ratio = el("input", { class: "ctl-ratio", type: "number", min: 1, max: 10, step: 0.1, "aria-label": "Relación de marcación" });
  const target = el("input", { class: "ctl-target", type: "number", min: 0.1, max: 3, step: 0.1, "aria-label": "Meta de abandono (%)" });
  const root = el(
    "section",
    { class: "card campaign", dataset: { campaignId: id } },
    el(
      "header",
      { class: "campaign-head" },
      el("div", {}, el("h2", { class: "campaign-name" }, campaign.name), el("div", { class: "muted small campaign-meta" }, "")),
      el("span", { class: "pill campaign-status" }, ""),
      el("span", { class: "grow" }),
      el("button", { type: "button", class: "btn btn-ok btn-start", onclick: () => transition(id, "start") }, "Iniciar"),
      el("button", { type: "button", class: "btn btn-warn btn-pause", onclick: () => transition(id, "pause") }, "Pausar campaña"),
    ),
    el(
      "form",
      { class: "controls-form row wrap", onsubmit: (ev) => saveSettings(ev, id) },
      el("label", { class: "inline" }, "Modo ", modeSelect),
      el("label", { class: "inline" }, "Relación ", ratio),
      el("label", { class: "inline" }, "Meta de abandono (%) ", target),
      el("button", { type: "submit", class: "btn" }, "Guardar cambios"),
    ),
    scriptEditor(campaign),
    el(
      "div",
      { class: "kpis" },
      kpi("agents", "Agentes"),
      kpi("dialing", "Marcando"),
      kpi("ringing", "Timbrando"),
      kpi("answered", "Contestadas (en espera)"),
      kpi("connected", "Conectadas"),
      kpi("dial_level", "Nivel de marcación"),
      kpi("abandon_today", "Abandono hoy"),
      kpi("abandon_30d", "Abandono 30 días"),
      kpi("answer_rate", "Tasa de respuesta"),
      kpi("contact_rate", "Tasa de contacto"),
      kpi("leads_ready", "Leads listos"),
      kpi("leads_remaining", "Leads restantes"),
      kpi("attempts_used", "Intentos usados"),
      kpi("attempts_today", "Intentos hoy"),
      kpi("window", "Ventana de llamadas"),
      kpi("recordings", "Grabaciones hoy"),
    ),
    el("div", { class: "states" }),
    el(
      "div",
      { class: "grid-wrap" },
      el(
        "table",
        { class: "table agents-grid" },
        el("thead", {}, el("tr", {}, ["Agente", "Ext.", "Estado", "Tiempo", "Cliente actual", "Hablando", "Acciones"].map((h) => el("th", {}, h)))),
        el("tbody", {}),
      ),
    ),
    el("div", { class: "charts" }, el("div", { class: "chart-calls" }), el("div", { class: "chart-abandon" })),
    el(
      "details",
      { class: "recordings" },
      el("summary", {}, "Grabaciones recientes"),
      el("ul", { class: "recordings-list" }, el("li", { class: "muted" }, "Sin grabaciones.")),
    ),
  );
  const panel = { id, root, data: null, dirty: false, refresh: null, recIds: "" };
  for (const input of [modeSelect, ratio, target]) input.addEventListener("input", () => (panel.dirty = true));
  panel.refresh = throttle(() => loadLive(panel), LIVE_MIN_MS);
  return panel;
}

// ------------------------------------------------------------------ rendering
function stateText(a) {
  // a browser phone's page reloaded mid-call: the same call goes on once the agent rejoins
  if (a.reconnecting) return `${AGENT_STATES[a.state] || a.state} · reconectando…`;
  if (a.state === "paused" && a.pause_code) return `${AGENT_STATES.paused} · ${PAUSE_FALLBACK[a.pause_code] || a.pause_code}`;
  if (a.state === "in_call") {
    // agent call controls (issue 15): the customer on hold, the agent muted
    const xfer = { transferring: "transfiriendo", consult_ringing: "llamando para consulta", consulting: "en consulta" }[a.transfer_state] || "";
    const flags = [a.on_hold_since ? "cliente en espera" : "", a.muted ? "silenciado" : "", xfer].filter(Boolean);
    if (flags.length) return `${AGENT_STATES.in_call} · ${flags.join(" · ")}`;
  }
  return AGENT_STATES[a.state] || a.state;
}

function agentRow(panel, a) {
  const spy = SPY_MODES.map(([mode, label]) =>
    el("button", { type: "button", class: "btn btn-xs btn-spy", disabled: !spyAvailable || a.state !== "in_call", title: spyAvailable ? label : "No disponible", onclick: () => spyOn(a.id, mode) }, spyAvailable ? label : `${label} (no disponible)`),
  );
  if (mySpy && mySpy.agentId === a.id) {
    spy.push(el("button", { type: "button", class: "btn btn-xs btn-spy-stop", onclick: () => spyStop(a.id) }, "Dejar de escuchar"));
  }
  const since = a.seconds_in_state === null ? null : serverClock.now() - a.seconds_in_state * 1000;
  return el(
    "tr",
    { dataset: { agentId: a.id, state: a.state, since: since === null ? "" : String(since) } },
    el("td", {}, a.full_name || a.username),
    el("td", {}, a.extension || "–"),
    el("td", {}, el("span", { class: `pill pill-${a.state}` }, stateText(a))),
    el("td", { class: "t-state" }, fmtDuration(a.seconds_in_state)),
    el("td", { class: "customer-cell" }, a.customer || "–"),
    el("td", { class: "t-talk" }, a.state === "in_call" ? fmtDuration(a.talk_seconds) : "–"),
    el(
      "td",
      { class: "actions" },
      el("button", { type: "button", class: "btn btn-xs", disabled: a.state === "logged_out" || a.state === "paused", onclick: () => forcePause(a.id) }, "Pausar"),
      el("button", { type: "button", class: "btn btn-xs btn-ghost", disabled: a.state === "logged_out", onclick: () => forceLogout(a) }, "Desconectar"),
      ...spy,
    ),
  );
}

function renderLive(panel, d) {
  panel.data = d;
  serverClock.setNow(d.now);
  const root = panel.root;
  const c = d.campaign;
  setZone(c.timezone);
  root.dataset.status = c.status;
  root.querySelector(".campaign-name").textContent = c.name;
  root.querySelector(".campaign-meta").textContent = `${DIAL_MODES[c.dial_mode] || c.dial_mode} · máx. ${c.max_attempts} intentos · tipificación ${c.wrap_up_seconds} s`;
  const status = root.querySelector(".campaign-status");
  status.textContent = CAMPAIGN_STATUS[c.status] || c.status;
  status.className = `pill campaign-status status-${c.status}`;
  root.querySelector(".btn-start").hidden = !(c.status === "paused" || c.status === "draft");
  root.querySelector(".btn-pause").hidden = c.status !== "running";
  if (!panel.dirty) {
    root.querySelector(".ctl-mode").value = c.dial_mode;
    root.querySelector(".ctl-ratio").value = c.dial_ratio;
    root.querySelector(".ctl-target").value = (c.abandon_target * 100).toFixed(1);
  }
  for (const a of d.agents) agentNames.set(a.id, a.full_name || a.username);

  const online = d.agents.filter((a) => a.state !== "logged_out").length;
  setKpi(panel, "agents", online, `${d.agents_by_state.ready || 0} disponibles · ${d.agents_by_state.in_call || 0} en llamada`);
  setKpi(panel, "dialing", d.calls.dialing);
  setKpi(panel, "ringing", d.calls.ringing);
  setKpi(panel, "answered", d.calls.answered);
  setKpi(panel, "connected", d.calls.connected);
  const level = d.pacing.dial_level;
  const why = pacingReason(d.pacing.reason);
  setKpi(panel, "dial_level", level === null ? "–" : level.toFixed(2).replace(".", ","), `${DIAL_MODES[d.pacing.mode] || d.pacing.mode}${why ? ` · ${why}` : ""}`);
  const ab = d.abandon;
  const lvl = (r) => (r >= ab.cap * 0.9 ? "danger" : r >= ab.cap * 0.66 ? "warning" : "ok");
  setKpi(panel, "abandon_today", pct(ab.rate_today), `${ab.today} de ${ab.live_answers_today} · tope ${pct(ab.cap, 0)}`, lvl(ab.rate_today));
  setKpi(panel, "abandon_30d", pct(ab.rate_30d), `${ab.d30} de ${ab.live_answers_30d} · tope ${pct(ab.cap, 0)}`, lvl(ab.rate_30d));
  setKpi(panel, "answer_rate", pct(d.rates.answer_rate), `${d.rates.answered_today} de ${d.rates.finished_today} hoy`);
  setKpi(panel, "contact_rate", pct(d.rates.contact_rate), `${d.rates.connected_today} conectadas hoy`);
  setKpi(panel, "leads_ready", d.leads.ready, "para marcar ahora");
  setKpi(panel, "leads_remaining", d.leads.remaining, `de ${d.leads.total}`);
  setKpi(panel, "attempts_used", d.leads.attempts_used, `de ${d.leads.attempts_capacity} posibles`);
  setKpi(panel, "attempts_today", d.rates.attempts_today, "");
  const w = d.window;
  setKpi(panel, "window", w.open ? "Abierta" : "Cerrada", w.open ? `cierra ${fmtTime(w.closes_at)}` : w.next_open_at ? `abre ${fmtWhen(w.next_open_at)}` : "", w.open ? "ok" : "warning");

  const rec = d.recordings;
  if (rec && (rec.enabled || rec.ok || rec.failed)) {
    const failed = rec.failed ? ` · ${rec.failed} fallida(s)${rec.last_failure ? `: ${rec.last_failure}` : ""}` : "";
    setKpi(panel, "recordings", rec.ok + rec.recording, `${rec.recording} en curso${failed}`, rec.failed ? "danger" : "ok");
  } else {
    setKpi(panel, "recordings", "–", "la campaña no graba");
  }

  const states = clear(root.querySelector(".states"));
  for (const s of STATE_ORDER) {
    const n = d.agents_by_state[s] || 0;
    const longest = d.agents.filter((a) => a.state === s).reduce((m, a) => Math.max(m, a.seconds_in_state || 0), 0);
    states.append(el("span", { class: `chip pill-${s}`, dataset: { state: s, count: n } }, `${AGENT_STATES[s]}: ${n}`, n ? el("small", {}, ` (máx. ${fmtDuration(longest)})`) : null));
  }
  const body = clear(root.querySelector(".agents-grid tbody"));
  const shown = d.agents.filter((a) => a.state !== "logged_out");
  const hidden = d.agents.length - shown.length;
  for (const a of shown) body.append(agentRow(panel, a));
  if (hidden) body.append(el("tr", { class: "muted" }, el("td", { colspan: 7 }, `${hidden} agente(s) desconectado(s)`)));
  if (!d.agents.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No hay agentes asignados.")));
  $("actualizado").textContent = `Actualizado ${fmtTime(d.now, { seconds: true })}`;
}

function renderToday(panel, today) {
  const cap = panel.data ? panel.data.abandon.cap : 0.03;
  clear(panel.root.querySelector(".chart-calls")).append(callsChart(today.buckets));
  clear(panel.root.querySelector(".chart-abandon")).append(abandonChart(today.buckets, cap));
}

// Ticking times between updates.
function tick() {
  for (const row of document.querySelectorAll(".agents-grid tr[data-agent-id]")) {
    const since = Number(row.dataset.since);
    if (!since) continue;
    const secs = (serverClock.now() - since) / 1000;
    row.querySelector(".t-state").textContent = fmtDuration(secs);
    if (row.dataset.state === "in_call") row.querySelector(".t-talk").textContent = fmtDuration(secs);
  }
}
setInterval(tick, 1000);

// ------------------------------------------------------------------ data
async function loadLive(panel) {
  try {
    renderLive(panel, await api("GET", `${API}/campaigns/${panel.id}/live`));
  } catch (err) {
    if (err.status !== 401) toast(messageEs(err), "error");
  }
}

async function loadToday(panel) {
  try {
    renderToday(panel, await api("GET", `${API}/campaigns/${panel.id}/today`));
  } catch {
    // charts are optional
  }
}

// The campaign's latest playable recordings (supervisors; every play is audited by the API).
// Re-rendered only when the list changes, so a recording being played is not interrupted.
async function loadRecordings(panel) {
  let page;
  try {
    page = await api("GET", `${API}/recordings?campaign_id=${panel.id}&status=ok&limit=10`);
  } catch {
    return; // recordings are optional on the dashboard
  }
  const ids = page.items.map((r) => r.id).join(",");
  if (ids === panel.recIds) return;
  panel.recIds = ids;
  const list = clear(panel.root.querySelector(".recordings-list"));
  if (!page.items.length) list.append(el("li", { class: "muted" }, "Sin grabaciones."));
  for (const r of page.items) {
    list.append(
      el(
        "li",
        { dataset: { recordingId: r.id } },
        el("span", {}, `${fmtWhen(r.started_at)} · ${fmtDuration(r.duration_s)} · intento ${r.attempt.slice(0, 8)}`),
        el("audio", { controls: true, preload: "metadata", src: r.audio_url }),
        el("a", { href: `${r.audio_url}?download=true` }, "Descargar"),
      ),
    );
  }
}
setInterval(() => {
  for (const panel of panels.values()) loadRecordings(panel);
}, 30000);

async function loadCampaigns() {
  let campaigns;
  try {
    campaigns = await api("GET", `${API}/campaigns`);
  } catch (err) {
    if (err.status !== 401) toast(messageEs(err), "error");
    return;
  }
  const all = $("ver-todas").checked;
  const wanted = campaigns.filter((c) => all || c.status === "running" || c.status === "paused");
  const box = $("campanas");
  const ids = new Set(wanted.map((c) => c.id));
  for (const [id, panel] of panels) {
    if (!ids.has(id)) {
      panel.root.remove();
      panels.delete(id);
    }
  }
  for (const c of wanted) {
    if (!panels.has(c.id)) {
      const panel = buildPanel(c);
      panels.set(c.id, panel);
      box.append(panel.root);
      loadLive(panel).then(() => loadToday(panel)).then(() => loadRecordings(panel));
    }
  }
  $("sin-campanas").hidden = wanted.length > 0;
  document.body.dataset.ready = "1";
}

// ------------------------------------------------------------------ script (guion) editor
// The placeholders come from the API (dialer/domain/script.py): the server refuses any other.
let placeholders = null;

async function scriptPlaceholders() {
  if (placeholders === null) placeholders = api("GET", `${API}/campaigns/script-placeholders`);
  return placeholders;
}

function scriptEditor(campaign) {
  const area = el("textarea", { class: "ctl-script", rows: 5, maxlength: 20000, "aria-label": "Guion de la campaña" });
  area.value = campaign.script || "";
  const chips = el("div", { class: "placeholder-list row wrap" });
  scriptPlaceholders()
    .then((all) => {
      for (const [name, what] of Object.entries(all)) {
        const token = `{${name}}`;
        chips.append(
          el("button", { type: "button", class: "btn btn-small placeholder", title: what, onclick: () => insertAtCursor(area, token) }, token),
        );
      }
    })
    .catch((err) => toast(messageEs(err), "error"));
  return el(
    "details",
    { class: "script-editor" },
    el("summary", {}, "Guion de la campaña"),
    el(
      "form",
      { class: "script-form", onsubmit: (ev) => saveScript(ev, campaign.id, area) },
      area,
      el("p", { class: "muted small" }, "Marcadores que se llenan con los datos del cliente (clic para insertar):"),
      chips,
      el("button", { type: "submit", class: "btn" }, "Guardar guion"),
    ),
  );
}

function insertAtCursor(area, text) {
  const start = area.selectionStart ?? area.value.length;
  const end = area.selectionEnd ?? start;
  area.value = area.value.slice(0, start) + text + area.value.slice(end);
  area.focus();
  area.selectionStart = area.selectionEnd = start + text.length;
}

async function saveScript(ev, id, area) {
  ev.preventDefault();
  try {
    await api("PATCH", `${API}/campaigns/${id}`, { script: area.value });
    toast("Guion guardado. Se verá en la próxima llamada.", "ok");
  } catch (err) {
    toast(messageEs(err), "error");
  }
}

// ------------------------------------------------------------------ controls
async function transition(id, action) {
  try {
    const out = await api("POST", `${API}/campaigns/${id}/${action}`);
    toast(`Campaña ${CAMPAIGN_STATUS[out.status].toLowerCase()}.`, "ok");
  } catch (err) {
    toast(messageEs(err), "error");
  }
  const panel = panels.get(id);
  if (panel) loadLive(panel);
}

async function saveSettings(ev, id) {
  ev.preventDefault();
  const panel = panels.get(id);
  const root = panel.root;
  const ratio = Number(root.querySelector(".ctl-ratio").value);
  const target = Number(root.querySelector(".ctl-target").value);
  if (!(ratio >= 1 && ratio <= 10)) {
    toast("La relación de marcación debe estar entre 1 y 10.", "error");
    return;
  }
  if (!(target > 0 && target <= 3)) {
    toast("La meta de abandono debe ser mayor que 0 y como máximo 3 % (tope legal).", "error");
    return;
  }
  const body = { dial_mode: root.querySelector(".ctl-mode").value, dial_ratio: ratio, abandon_target: Math.round(target * 10) / 1000 };
  try {
    await api("PATCH", `${API}/campaigns/${id}`, body);
    panel.dirty = false;
    toast("Cambios guardados. El marcador los aplica en su siguiente ciclo.", "ok");
  } catch (err) {
    toast(messageEs(err), "error");
  }
  loadLive(panel);
}

async function forcePause(agentId) {
  try {
    await api("POST", `${API}/agents/${agentId}/pause`, { code: "supervisor" });
    toast(`Pausa enviada a ${agentNames.get(agentId) || `agente ${agentId}`}.`, "ok");
  } catch (err) {
    toast(messageEs(err), "error");
  }
}

async function forceLogout(agent) {
  if (!window.confirm(`¿Desconectar a ${agent.full_name || agent.username}? Su llamada en curso no se corta.`)) return;
  try {
    await api("POST", `${API}/agents/${agent.id}/logout`);
    toast("Desconexión enviada.", "ok");
  } catch (err) {
    toast(messageEs(err), "error");
  }
}

function rerenderPanels() {
  for (const panel of panels.values()) if (panel.data) renderLive(panel, panel.data);
}

async function spyOn(agentId, mode) {
  try {
    const r = await api("POST", `${API}/agents/${agentId}/spy`, { mode });
    mySpy = { agentId, spy: r.spy || null, mode };
    toast(r.status === "ringing" ? "Llamando a su extensión para la escucha…" : "Solicitud enviada al marcador; esperando respuesta…", "ok");
    rerenderPanels();
  } catch (err) {
    if (err instanceof ApiFailure && (err.status === 404 || err.status === 405)) {
      spyAvailable = false;
      toast("Escucha / susurro / intervención no disponible en este servidor.", "error");
      rerenderPanels();
    } else {
      toast(messageEs(err), "error");
    }
  }
}

async function spyStop(agentId) {
  try {
    await api("DELETE", `${API}/agents/${agentId}/spy`);
    toast("Escucha terminada.", "ok");
  } catch (err) {
    toast(messageEs(err), "error");
  }
  mySpy = null;
  rerenderPanels();
}

const SPY_END_ES = {
  call_ended: "la llamada del cliente terminó",
  stopped: "la detuvo",
  replaced: "inició otra escucha",
  hung_up: "colgó su extensión",
};

function onSpyEvent(type, d) {
  if (!mySpy) return;
  if (mySpy.spy ? d.spy !== mySpy.spy : Number(d.spied_agent_id) !== mySpy.agentId) return;
  if (!mySpy.spy && d.spy) mySpy.spy = d.spy; // the POST answered "pending": learn it now
  if (type === "spy_failed" || type === "spy_ended") {
    if (type === "spy_failed") toast(`No se pudo conectar la escucha: ${d.reason || "sin detalle"}`, "error");
    mySpy = null;
    rerenderPanels();
  }
}

// ------------------------------------------------------------------ live events
const CALL_CONTROL_ES = {
  hangup: "colgó al cliente",
  mute: "se silenció",
  unmute: "activó su micrófono",
  hold: "puso al cliente en espera",
  resume: "retomó la llamada",
  dtmf: "envió tonos",
  transfer: "transfirió la llamada",
};
const EVENT_TEXT = {
  call_dialing: (d) => `Marcando · lead ${d.lead_id}`,
  screen_pop: (d) => `${agentNames.get(Number(d.agent_id)) || `Agente ${d.agent_id}`} conectado con lead ${d.lead_id}`,
  call_ended: (d) => `Llamada terminada: ${OUTCOMES[d.outcome] || d.outcome} · lead ${d.lead_id}`,
  agent_state: (d) => `${agentNames.get(Number(d.agent_id)) || `Agente ${d.agent_id}`}: ${AGENT_STATES[d.state] || d.state}`,
  appointment_booked: (d) => `Cita agendada · ${d.branch || ""} ${d.service || ""}`,
  complaint_raised: () => "Queja / reclamo registrado (PQRS)",
  disposition_recorded: (d) => `Tipificación: ${d.code}`,
  command_rejected: (d) => `Acción rechazada por el marcador: ${d.command}`,
  spy_ringing: (d) => `Llamando a la extensión del supervisor (${d.mode}) · ${agentNames.get(Number(d.spied_agent_id)) || `Agente ${d.spied_agent_id}`}`,
  spy_started: (d) => `Escucha iniciada (${d.mode}) · ${agentNames.get(Number(d.spied_agent_id)) || `Agente ${d.spied_agent_id}`}`,
  spy_failed: (d) => `Escucha fallida: ${d.reason || d.code || "sin detalle"}`,
  spy_ended: (d) => `Escucha terminada: ${SPY_END_ES[d.reason] || d.reason}`,
  whatsapp_status: (d) => `WhatsApp: ${d.status || "estado"}`,
  whatsapp_reply: () => "WhatsApp: respuesta del cliente",
  lead_exhausted: (d) => `Lead ${d.lead_id} sin contacto: pasa a WhatsApp`,
  call_control: (d) => `${agentNames.get(Number(d.agent_id)) || `Agente ${d.agent_id}`}: ${CALL_CONTROL_ES[d.action] || d.action}${d.to_agent ? ` a ${agentNames.get(Number(d.to_agent)) || `Agente ${d.to_agent}`}` : ""}`,
};

function logEvent(type, data) {
  const text = (EVENT_TEXT[type] || (() => type))(data);
  const list = $("eventos");
  list.prepend(el("li", { dataset: { type } }, el("time", {}, fmtTime(serverClock.now(), { seconds: true })), " ", text));
  while (list.children.length > 25) list.lastElementChild.remove();
}

function applyAgentState(d) {
  // Immediate update of the agent's row; the panel's /live refresh follows.
  const row = document.querySelector(`.agents-grid tr[data-agent-id="${Number(d.agent_id)}"]`);
  if (!row) return;
  row.dataset.state = d.state;
  const since = Date.parse(d.since);
  if (!Number.isNaN(since)) row.dataset.since = String(since);
  const pill = row.querySelector(".pill");
  pill.className = `pill pill-${d.state}`;
  pill.textContent = stateText({ state: d.state, pause_code: d.pause_code });
}

liveEvents(
  Object.keys(EVENT_TEXT),
  (type, data) => {
    logEvent(type, data);
    if (type === "agent_state") applyAgentState(data);
    if (type === "call_control") {
      const panel = panels.get(Number(data.campaign_id));
      if (panel) panel.refresh();
    }
    if (type.startsWith("spy_")) onSpyEvent(type, data);
    const cid = Number(data.campaign_id);
    if (cid && panels.has(cid)) panels.get(cid).refresh();
    else if (!cid) for (const p of panels.values()) p.refresh();
  },
  (ok) => {
    if (ok) for (const p of panels.values()) p.refresh();
  },
);

setInterval(() => {
  for (const p of panels.values()) p.refresh();
}, POLL_MS);
setInterval(() => {
  for (const p of panels.values()) loadToday(p);
}, TODAY_MS);
setInterval(loadCampaigns, 30000);
$("ver-todas").addEventListener("change", loadCampaigns);
loadClock().then(loadCampaigns);
