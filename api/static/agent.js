// Agent screen: campaign log-in with an extension (nailed-up room call), ready / pause,
// status bar, preview card, screen-pop with script and history, disposition form with
// appointment / callback / complaint, wrap-up timer, shortcuts, sound and visual alert.
import {
  $,
  AGENT_STATES,
  API,
  ApiFailure,
  OUTCOMES,
  PAUSE_FALLBACK,
  api,
  clear,
  el,
  fmtDate,
  fmtDuration,
  liveEvents,
  loadClock,
  messageEs,
  onSignOut,
  serverClock,
  setZone,
  throttle,
  zone,
  zoneParts,
  toast,
} from "./common.js";

const SERVICES = [
  "Mantenimiento preventivo",
  "Mantenimiento 5.000 km",
  "Mantenimiento 10.000 km",
  "Alineación y balanceo",
  "Revisión de frenos",
  "Diagnóstico general",
  "Latonería y pintura",
  "Cambio de aceite",
];
const BRANCHES = ["Tunja", "Duitama"];
const SCOPES = [
  ["own_agent", "Yo mismo (el mismo asesor)"],
  ["anyone", "Cualquier asesor"],
];
const WA_STATUS = {
  queued: "en cola",
  scheduled: "programado",
  sent: "enviado",
  delivered: "entregado",
  read: "leído",
  failed: "falló",
  skipped: "omitido",
  received: "recibido",
};

const view = {
  me: null,
  attempt: null, // attempt shown in the screen-pop
  formFor: null, // attempt the disposition form was built for
  selected: null, // selected disposition definition
  pendingSubmit: false,
  campaigns: new Map(), // id -> campaign (wrap_up_seconds...)
  baseTitle: document.title,
  saving: false,
};

// ------------------------------------------------------------------ sound and alert
let audio = null;
function unlockAudio() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch {
    audio = null;
  }
}
document.addEventListener("pointerdown", unlockAudio);
document.addEventListener("keydown", unlockAudio);

function beep() {
  if (!audio) unlockAudio();
  if (!audio) return;
  const t = audio.currentTime + 0.01;
  for (const [offset, freq] of [
    [0, 880],
    [0.2, 1175],
    [0.4, 880],
  ]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, t + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + offset + 0.17);
    osc.connect(gain).connect(audio.destination);
    osc.start(t + offset);
    osc.stop(t + offset + 0.18);
  }
}

function alertNewCall(call) {
  beep();
  const card = $("ficha");
  card.classList.remove("flash");
  void card.offsetWidth; // restart the animation
  card.classList.add("flash");
  document.title = `📞 ${call.lead.customer_name} · Marcador`;
  document.body.classList.add("new-call");
  setTimeout(() => document.body.classList.remove("new-call"), 4000);
}

// ------------------------------------------------------------------ helpers
function pauseLabel(code) {
  const me = view.me;
  const found = me && me.pause_codes.find((p) => p.code === code);
  return found ? found.label_es : PAUSE_FALLBACK[code] || code;
}

function stateLabel(state) {
  if (state.reconnecting) return `${AGENT_STATES[state.state] || state.state} · reconectando…`;
  if (state.state === "paused" && state.pause_code) {
    return `${AGENT_STATES.paused} · ${pauseLabel(state.pause_code)}`;
  }
  return AGENT_STATES[state.state] || state.state;
}

function pad(n) {
  return String(n).padStart(2, "0");
}

// Date and time fields: dd/mm/aaaa and 24 h (HH:MM) text inputs in the campaign's time zone,
// never the browser's locale (an <input type=datetime-local> shows AM/PM under en-US).
const DATE_RE = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/;
const TIME_RE = /^([01]?\d|2[0-3]):([0-5]\d)$/;

// "25/11/2026", "09:00" -> "2026-11-25T09:00:00-05:00" (the display zone's offset at that
// moment), or null when either is not a valid date / 24 h time.
export function zonedIso(dateText, timeText) {
  const dm = DATE_RE.exec((dateText || "").trim());
  const tm = TIME_RE.exec((timeText || "").trim());
  if (!dm || !tm) return null;
  const [day, month, year, hour, minute] = [dm[1], dm[2], dm[3], tm[1], tm[2]].map(Number);
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  const check = new Date(wall);
  if (check.getUTCDate() !== day || check.getUTCMonth() !== month - 1) return null;
  let t = wall;
  for (let i = 0; i < 3; i++) {
    const p = zoneParts(new Date(t));
    t += wall - Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute);
  }
  const off = Math.round((wall - t) / 60000);
  const sign = off >= 0 ? "+" : "-";
  const abs = Math.abs(off);
  return `${year}-${pad(month)}-${pad(day)}T${pad(hour)}:${pad(minute)}:00${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

// {date: "dd/mm/aaaa", time: "HH:MM"} of an ISO time in the display zone (a saved draft).
function splitIso(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return null;
  const p = zoneParts(d);
  return { date: `${p.day}/${p.month}/${p.year}`, time: `${p.hour}:${p.minute}` };
}

function campaignName(id) {
  const c = view.me && view.me.campaigns.find((x) => x.id === id);
  return c ? c.name : id ? `Campaña ${id}` : "";
}

async function campaignDetails(id) {
  if (!id) return null;
  if (!view.campaigns.has(id)) {
    try {
      view.campaigns.set(id, await api("GET", `${API}/campaigns/${id}`));
    } catch {
      view.campaigns.set(id, null);
    }
  }
  return view.campaigns.get(id);
}

// ------------------------------------------------------------------ actions
async function act(method, path, body, okText) {
  try {
    await api(method, path, body);
    if (okText) toast(okText, "ok", 2500);
  } catch (err) {
    toast(messageEs(err), "error");
  }
  refreshSoon();
}

function goReady() {
  const s = view.me && view.me.state.state;
  if (s === "paused" && view.me.state.pause_code !== "connecting") {
    act("POST", `${API}/agent/ready`, undefined, "Solicitud enviada: disponible");
  }
}

function goPause() {
  const s = view.me && view.me.state.state;
  if (s === "ready" || s === "paused") {
    const code = $("codigo-pausa").value || "break";
    act("POST", `${API}/agent/pause`, { code }, `Pausa: ${pauseLabel(code)}`);
  }
}

$("btn-disponible").addEventListener("click", goReady);
$("btn-pausa").addEventListener("click", goPause);
const LOGIN_KEY = "marcador.agent.login"; // {campaign_id, extension} of this tab's login

$("btn-desconectar").addEventListener("click", () => {
  sessionStorage.removeItem(LOGIN_KEY);
  act("POST", `${API}/agent/logout`, undefined, "Desconectado de la campaña");
});

// Rejoin after a page reload mid-call (issue 15): the browser phone ended the stale session
// call; the dialer keeps the agent's call and state for a grace period ("reconectando") and a
// login from this tab (its login intent is kept in sessionStorage) calls the seat back into
// the same room. Hardware softphones never get "reconnecting".
const rejoin = { at: 0 };

async function maybeRejoin() {
  const st = view.me && view.me.state;
  if (!st || !st.reconnecting) return;
  let intent = null;
  try {
    intent = JSON.parse(sessionStorage.getItem(LOGIN_KEY) || "null");
  } catch {
    intent = null;
  }
  if (!intent || intent.campaign_id !== st.campaign_id || intent.extension !== st.extension) return;
  if (document.body.dataset.phone !== "registered" || Date.now() - rejoin.at < 5000) return;
  rejoin.at = Date.now();
  try {
    await api("POST", `${API}/agent/login`, intent);
    toast("Reconectando su teléfono a la llamada…", "ok", 3000);
  } catch (err) {
    toast(messageEs(err), "error");
  }
  refreshSoon();
}
setInterval(maybeRejoin, 1000);

$("form-campana").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  unlockAudio();
  const campaign_id = Number($("sel-campana").value);
  const extension = $("txt-extension").value.trim();
  if (!campaign_id) {
    toast("Elija una campaña.", "error");
    return;
  }
  if (!extension) {
    toast("Escriba la extensión de su softphone.", "error");
    return;
  }
  const button = $("btn-conectar");
  button.disabled = true;
  try {
    await api("POST", `${API}/agent/login`, { campaign_id, extension });
    sessionStorage.setItem(LOGIN_KEY, JSON.stringify({ campaign_id, extension }));
    toast(`Llamando a la extensión ${extension}…`, "ok", 3000);
  } catch (err) {
    toast(messageEs(err), "error");
  } finally {
    button.disabled = false;
  }
  refreshSoon();
});

onSignOut(async () => {
  if (view.me && view.me.state.state !== "logged_out") {
    await api("POST", `${API}/agent/logout`, undefined, { redirectOn401: false });
  }
});

// ------------------------------------------------------------------ rendering
function renderStatus(me) {
  const st = me.state;
  const pill = $("estado");
  pill.textContent = stateLabel(st);
  pill.className = `pill pill-${st.state}`;
  document.body.dataset.state = st.state;
  const loggedIn = st.state !== "logged_out";
  $("controles").hidden = !loggedIn;
  $("stat-ext").hidden = !st.extension;
  $("extension").textContent = st.extension || "";
  $("stat-campana").hidden = !st.campaign_id;
  $("campana").textContent = campaignName(st.campaign_id);
  const connecting = st.state === "paused" && st.pause_code === "connecting";
  $("btn-disponible").disabled = !(st.state === "paused" && !connecting);
  $("btn-pausa").disabled = !(st.state === "ready" || (st.state === "paused" && !connecting));
  const select = $("codigo-pausa");
  if (!select.options.length) {
    for (const p of me.pause_codes) {
      if (p.code !== "supervisor") select.append(el("option", { value: p.code }, p.label_es));
    }
  }
}

function renderLogin(me) {
  const box = $("ingreso");
  const show = me.state.state === "logged_out";
  box.hidden = !show;
  $("area").hidden = show;
  if (!show) return;
  const select = $("sel-campana");
  const current = select.value;
  clear(select);
  const active = me.campaigns.filter((c) => c.status === "running" || c.status === "paused");
  if (!active.length) select.append(el("option", { value: "" }, "No tiene campañas activas"));
  for (const c of active) {
    select.append(el("option", { value: c.id }, `${c.name}${c.status === "paused" ? " (en pausa)" : ""}`));
  }
  if (current) select.value = current;
  const ext = $("txt-extension");
  if (!ext.value && me.user.extension) ext.value = me.user.extension;
}

function fact(label, value) {
  if (value === null || value === undefined || value === "") return [];
  return [el("dt", {}, label), el("dd", {}, value)];
}

function historyTable(title, headers, rows) {
  if (!rows.length) return null;
  return el(
    "div",
    { class: "hist-block" },
    el("h4", {}, title),
    el(
      "table",
      { class: "table compact" },
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))),
    ),
  );
}

function dispositionLabel(code) {
  const call = view.me && view.me.call;
  const d = call && call.dispositions.find((x) => x.code === code);
  return d ? d.label_es : code;
}

function renderHistory(call) {
  const box = clear($("historial"));
  const h = call.history;
  const attempts = h.attempts.map((a) => [
    fmtDate(a.created_at),
    `#${a.attempt_number}`,
    a.number,
    a.uuid === call.attempt.uuid ? "Llamada actual" : OUTCOMES[a.outcome] || a.outcome || "En curso",
  ]);
  const dispositions = h.dispositions.map((d) => [
    fmtDate(d.created_at),
    dispositionLabel(d.code),
    [d.reason, d.notes].filter(Boolean).join(" · "),
  ]);
  const messages = h.whatsapp_messages.map((m) => [
    fmtDate(m.created_at),
    m.direction === "in" ? "Cliente" : "Marcador",
    m.text || `Plantilla ${m.template}`,
    WA_STATUS[m.status] || m.status,
  ]);
  const appts = h.appointments.map((a) => [fmtDate(a.scheduled_for), a.branch, a.service, a.status]);
  const pqrs = h.pqrs.map((p) => [fmtDate(p.created_at), p.type, p.description, p.status]);
  const blocks = [
    historyTable("Intentos de llamada", ["Fecha", "Intento", "Número", "Resultado"], attempts),
    historyTable("Tipificaciones anteriores", ["Fecha", "Resultado", "Detalle"], dispositions),
    historyTable("Mensajes de WhatsApp", ["Fecha", "De", "Mensaje", "Estado"], messages),
    historyTable("Citas", ["Fecha", "Sede", "Servicio", "Estado"], appts),
    historyTable("PQRS", ["Fecha", "Tipo", "Descripción", "Estado"], pqrs),
  ].filter(Boolean);
  if (!blocks.length) box.append(el("p", { class: "muted" }, "Sin historial previo."));
  box.append(...blocks);
}

function renderScreenPop(me) {
  const call = me.call;
  const card = $("ficha");
  card.hidden = !call;
  if (!call) {
    if (view.attempt) document.title = view.baseTitle;
    view.attempt = null;
    return;
  }
  const lead = call.lead;
  const isNew = view.attempt !== call.attempt.uuid;
  view.attempt = call.attempt.uuid;
  card.dataset.attempt = call.attempt.uuid;
  card.dataset.leadId = String(lead.id);
  $("ficha-campana").textContent = call.campaign.name;
  $("ficha-cliente").textContent = lead.customer_name;
  const pill = $("ficha-estado");
  const live = me.state.state === "in_call" || me.state.state === "reserved";
  pill.textContent = live ? "En llamada" : "Llamada terminada";
  pill.className = `pill pill-${live ? "in_call" : "wrap_up"}`;
  const phones = lead.phones.map((p) => `${p.number}${p.kind ? ` (${p.kind === "mobile" ? "celular" : p.kind === "landline" ? "fijo" : p.kind})` : ""}`);
  const dl = clear($("ficha-datos"));
  dl.append(
    ...fact("Documento", lead.national_id ? `${lead.id_type || "CC"} ${lead.national_id}` : null),
    ...fact("Teléfonos", phones.join(" · ")),
    ...fact("Vehículo", call.vehicle),
    ...fact("Placa", lead.plate),
    ...fact("Sede", lead.branch),
    ...fact("Última visita", lead.last_visit_date),
    ...fact("Correo", lead.email),
    ...fact("Intento", `${call.attempt.attempt_number}`),
  );
  $("ficha-guion").textContent = call.script || "Esta campaña no tiene guion.";
  renderRecording(call, isNew);
  renderHistory(call);
  if (isNew) alertNewCall(call);
}

// Recorded campaigns: the consent notice and the one control to stop the recording.
function renderRecording(call, isNew) {
  const box = $("ficha-grabacion");
  box.hidden = !call.recording;
  const button = $("detener-grabacion");
  if (isNew) {
    button.disabled = false;
    $("grabacion-estado").textContent = "Grabando";
  }
  button.onclick = async () => {
    button.disabled = true;
    try {
      await api("POST", `${API}/recordings/stop`, {});
      $("grabacion-estado").textContent = "Grabación detenida";
    } catch (err) {
      button.disabled = false;
      $("grabacion-estado").textContent = `No se pudo detener: ${messageEs(err)}`;
    }
  };
}

function renderIdle(me) {
  const st = me.state;
  const connecting = st.state === "paused" && st.pause_code === "connecting";
  $("conectando").hidden = !connecting;
  const idle = $("espera");
  idle.hidden = connecting || !!me.call || !!me.preview || st.state === "logged_out";
  if (idle.hidden) return;
  const title = $("espera-titulo");
  const text = $("espera-texto");
  if (st.state === "ready") {
    title.textContent = "Esperando llamada";
    text.textContent = "Cuando un cliente conteste, sus datos aparecerán aquí con un aviso sonoro.";
  } else if (st.state === "reserved") {
    title.textContent = "Conectando una llamada…";
    text.textContent = "Un cliente contestó y está pasando a su sala.";
  } else if (st.state === "paused") {
    title.textContent = `En pausa: ${pauseLabel(st.pause_code)}`;
    text.textContent = "Pase a Disponible (F2) para recibir llamadas.";
  } else {
    title.textContent = stateLabel(st);
    text.textContent = "";
  }
}

// Preview mode: /agent/me carries `preview` {lead, vehicle, deadline, history} when the
// dialer put a lead on this agent's screen; call or skip before the deadline.
let previewTimer = null;
function renderPreview(me) {
  const card = $("vista-previa");
  const p = me.preview;
  card.hidden = !p;
  clearInterval(previewTimer);
  if (!p) return;
  const lead = p.lead || {};
  const attempts = (p.history && p.history.attempts) || [];
  const box = clear($("previa-datos"));
  box.append(
    el("h3", { class: "customer" }, lead.customer_name || "Cliente"),
    el(
      "dl",
      { class: "facts" },
      ...fact("Vehículo", p.vehicle),
      ...fact("Sede", lead.branch),
      ...fact("Teléfonos", (lead.phones || []).map((x) => x.number).join(" · ")),
      ...fact("Intentos previos", String(attempts.length)),
      ...fact("Último resultado", attempts.length ? OUTCOMES[attempts[attempts.length - 1].outcome] || "–" : null),
    ),
  );
  const deadline = p.deadline ? Date.parse(p.deadline) : NaN;
  const tick = () => {
    const counter = $("previa-cuenta");
    if (Number.isNaN(deadline)) {
      counter.textContent = "";
      return;
    }
    const left = Math.max(0, Math.round((deadline - serverClock.now()) / 1000));
    counter.textContent = `Se llama en ${left} s`;
  };
  tick();
  previewTimer = setInterval(tick, 500);
}

async function previewAction(action) {
  if (!view.me || !view.me.preview) return;
  try {
    await api("POST", `${API}/agent/preview/${action}`);
    toast(action === "call" ? "Llamando al cliente…" : "Cliente saltado.", "ok", 2500);
  } catch (err) {
    toast(err instanceof ApiFailure && err.status === 404 ? "Vista previa no disponible en este servidor." : messageEs(err), "error");
  }
  refreshSoon();
}
$("btn-previa-llamar").addEventListener("click", () => previewAction("call"));
$("btn-previa-saltar").addEventListener("click", () => previewAction("skip"));

// ------------------------------------------------------------------ disposition form
function field(id, label, input, hint) {
  return el("div", { class: "field", id: `campo-${id}` }, el("label", { for: `f-${id}` }, label), input, hint ? el("div", { class: "muted small" }, hint) : null);
}

// A default date and time in the display zone: `hoursAhead` from now, at `atHour` o'clock or
// rounded up to the quarter hour.
function defaultDate(hoursAhead, atHour) {
  let t = serverClock.now() + hoursAhead * 3600 * 1000;
  if (atHour === undefined) t = Math.ceil(t / 900000) * 900000;
  const p = zoneParts(new Date(t));
  return { date: `${p.day}/${p.month}/${p.year}`, time: atHour === undefined ? `${p.hour}:${p.minute}` : `${pad(atHour)}:00` };
}

function dateTimeField(id, label, value) {
  const date = el("input", { id: `f-${id}`, type: "text", inputmode: "numeric", required: true, placeholder: "dd/mm/aaaa", pattern: "\\d{1,2}/\\d{1,2}/\\d{4}", maxlength: 10, size: 10, value: value.date, "aria-label": `${label}: fecha (dd/mm/aaaa)` });
  const time = el("input", { id: `f-${id}-hora`, type: "text", inputmode: "numeric", required: true, placeholder: "HH:MM", pattern: "([01]?\\d|2[0-3]):[0-5]\\d", maxlength: 5, size: 5, value: value.time, "aria-label": `${label}: hora (24 h)` });
  const row = el("div", { class: "datetime" }, date, time, el("span", { class: "muted small" }, `hora de ${zone.label}, 24 h`));
  return field(id, label, row, "Fecha dd/mm/aaaa y hora de 24 h (por ejemplo 14:30).");
}

function readDateTime(id) {
  const date = $(`f-${id}`);
  const time = $(`f-${id}-hora`);
  if (!date || !time) return null;
  return zonedIso(date.value, time.value);
}

function buildFields(def) {
  const box = clear($("campos"));
  if (!def) return;
  const call = view.me.call;
  const req = new Set(def.required);
  if (req.has("appointment_at")) {
    box.append(dateTimeField("appointment_at", "Fecha y hora de la cita *", defaultDate(24, 9)));
  }
  if (req.has("branch")) {
    const select = el("select", { id: "f-branch", required: true });
    const branches = [...new Set([call.lead.branch, ...BRANCHES].filter(Boolean))];
    for (const b of branches) select.append(el("option", { value: b }, b));
    box.append(field("branch", "Sede *", select));
  }
  if (req.has("service")) {
    const list = el("datalist", { id: "servicios" }, SERVICES.map((s) => el("option", { value: s })));
    box.append(field("service", "Servicio *", el("input", { id: "f-service", list: "servicios", required: true, maxlength: 200, value: SERVICES[0] })), list);
  }
  if (req.has("callback_at")) {
    box.append(dateTimeField("callback_at", "Volver a llamar el *", defaultDate(2)));
  }
  if (req.has("callback_scope")) {
    const group = el("div", { class: "radios", id: "f-callback_scope" });
    SCOPES.forEach(([value, label], i) => {
      group.append(el("label", { class: "inline" }, el("input", { type: "radio", name: "callback_scope", value, checked: i === 0 }), label));
    });
    box.append(el("div", { class: "field" }, el("span", { class: "label" }, "¿Quién devuelve la llamada? *"), group));
  }
  if (req.has("reason") || def.reason_options.length) {
    const select = el("select", { id: "f-reason", required: req.has("reason") });
    select.append(el("option", { value: "" }, "— Elija el motivo —"));
    for (const o of def.reason_options) select.append(el("option", { value: o.code }, o.label_es));
    box.append(field("reason", `Motivo${req.has("reason") ? " *" : ""}`, select));
  }
  if (req.has("opportunity_areas") || def.area_options.length) {
    const group = el("div", { class: "checks", id: "f-opportunity_areas" });
    for (const o of def.area_options) {
      group.append(el("label", { class: "inline" }, el("input", { type: "checkbox", value: o.code }), o.label_es));
    }
    box.append(el("div", { class: "field" }, el("span", { class: "label" }, "Áreas de oportunidad *"), group));
  }
  if (req.has("description")) {
    box.append(field("description", "Descripción de la queja o reclamo (PQRS) *", el("textarea", { id: "f-description", rows: 3, maxlength: 4000, required: true }), "Se crea un caso PQRS con plazo de 15 días hábiles."));
  }
}

function selectDisposition(code) {
  const call = view.me && view.me.call;
  if (!call) return;
  const def = call.dispositions.find((d) => d.code === code);
  if (!def) return;
  view.selected = def;
  for (const input of document.querySelectorAll('input[name="tipificacion"]')) {
    input.checked = input.value === code;
    input.closest("label").classList.toggle("selected", input.checked);
  }
  buildFields(def);
  $("error-tipificacion").hidden = true;
}

function buildForm(me) {
  const call = me.call;
  const section = $("tipificacion");
  section.hidden = !call;
  if (!call) {
    view.formFor = null;
    view.selected = null;
    view.pendingSubmit = false;
    return;
  }
  if (view.formFor === call.attempt.uuid) return;
  view.formFor = call.attempt.uuid;
  view.selected = null;
  view.pendingSubmit = false;
  const list = clear($("lista-tipificaciones"));
  call.dispositions.forEach((d, i) => {
    const key = i < 9 ? String(i + 1) : "";
    list.append(
      el(
        "label",
        { class: "disp", dataset: { code: d.code } },
        el("input", { type: "radio", name: "tipificacion", value: d.code, onchange: () => selectDisposition(d.code) }),
        key ? el("kbd", {}, key) : null,
        el("span", {}, d.label_es),
      ),
    );
  });
  clear($("campos"));
  $("notas").value = "";
  $("error-tipificacion").hidden = true;
  resetSubmitLabel();
  delete document.body.dataset.draft;
  const after = clear($("despues"));
  after.append(el("option", { value: "" }, "Pasar a disponible"));
  for (const p of me.pause_codes) {
    if (p.code !== "supervisor") after.append(el("option", { value: p.code }, `Pausa: ${p.label_es}`));
  }
  restoreDraft(call.attempt.uuid);
}

function collectDetails(def) {
  const details = {};
  const req = new Set(def.required);
  const val = (id) => {
    const node = $(id);
    return node ? node.value.trim() : "";
  };
  if (req.has("appointment_at")) details.appointment_at = readDateTime("appointment_at");
  if (req.has("branch")) details.branch = val("f-branch");
  if (req.has("service")) details.service = val("f-service");
  if (req.has("callback_at")) details.callback_at = readDateTime("callback_at");
  if (req.has("callback_scope")) {
    const checked = document.querySelector('input[name="callback_scope"]:checked');
    details.callback_scope = checked ? checked.value : null;
  }
  if ($("f-reason") && val("f-reason")) details.reason = val("f-reason");
  if ($("f-opportunity_areas")) {
    details.opportunity_areas = [...document.querySelectorAll("#f-opportunity_areas input:checked")].map((i) => i.value);
  }
  if (req.has("description")) details.description = val("f-description");
  const notes = $("notas").value.trim();
  if (notes) details.notes = notes;
  const missing = def.required.filter((f) => {
    const v = details[f];
    return v === null || v === undefined || v === "" || (Array.isArray(v) && !v.length);
  });
  return { details, missing };
}

async function submitDisposition() {
  const me = view.me;
  const error = $("error-tipificacion");
  error.hidden = true;
  if (!me || !me.call || view.saving) return;
  const def = view.selected;
  if (!def) {
    error.textContent = "Elija el resultado de la llamada (teclas 1 a 9).";
    error.hidden = false;
    return;
  }
  const { details, missing } = collectDetails(def);
  const badDate = ["appointment_at", "callback_at"].find((f) => $(`f-${f}`) && ($(`f-${f}`).value.trim() || $(`f-${f}-hora`).value.trim()) && !details[f]);
  if (badDate) {
    error.textContent = "Fecha u hora no válida: escriba la fecha como dd/mm/aaaa y la hora de 24 h (por ejemplo 14:30).";
    error.hidden = false;
    $(`f-${badDate}`).focus();
    return;
  }
  if (missing.length) {
    error.textContent = messageEs(new ApiFailure(422, "invalid_disposition", "", { missing }));
    error.hidden = false;
    return;
  }
  const body = { attempt: me.call.attempt.uuid, code: def.code, details };
  const after = $("despues").value;
  if (after) body.pause_code = after;
  if (me.state.state === "in_call" || me.state.state === "reserved") {
    await saveDraft(body, def);
    return;
  }
  view.saving = true;
  $("btn-guardar").disabled = true;
  try {
    const out = await api("POST", `${API}/agent/disposition`, body);
    view.pendingSubmit = false;
    recorded(def, out);
  } catch (err) {
    view.pendingSubmit = false;
    error.textContent = messageEs(err);
    error.hidden = false;
  } finally {
    view.saving = false;
    $("btn-guardar").disabled = false;
    resetSubmitLabel();
  }
  refreshSoon();
}

function recorded(def, out) {
  let text = `Tipificación guardada: ${def.label_es}.`;
  if (out.appointment_id) text += ` Cita #${out.appointment_id} agendada.`;
  if (out.pqrs_id) text += ` PQRS #${out.pqrs_id} creada.`;
  toast(text, "ok");
  document.body.dataset.lastDisposition = def.code;
  if (out.appointment_id) document.body.dataset.lastAppointment = String(out.appointment_id);
  document.title = view.baseTitle;
}

// During the call the disposition is saved on the server as a draft: the API records it when
// the customer hangs up, even with this tab closed (PUT /agent/disposition/draft).
async function saveDraft(body, def) {
  const error = $("error-tipificacion");
  view.saving = true;
  $("btn-guardar").disabled = true;
  try {
    const out = await api("PUT", `${API}/agent/disposition/draft`, body);
    if (out.status === "applied") {
      view.pendingSubmit = false;
      resetSubmitLabel();
      recorded(def, out.outcome);
      refreshSoon();
      return;
    }
    view.pendingSubmit = true;
    view.pendingSince = Date.now();
    document.body.dataset.draft = body.attempt;
    toast("La tipificación quedó guardada: se registra cuando el cliente cuelgue, aunque cierre esta pestaña.", "info", 5000);
    $("btn-guardar").textContent = "Se guardará al colgar…";
  } catch (err) {
    view.pendingSubmit = false;
    error.textContent = messageEs(err);
    error.hidden = false;
    resetSubmitLabel();
  } finally {
    view.saving = false;
    $("btn-guardar").disabled = false;
  }
}

// A reloaded page: the draft saved during this call (if any) fills the form again.
async function restoreDraft(attempt) {
  let out;
  try {
    out = await api("GET", `${API}/agent/disposition/draft?attempt=${encodeURIComponent(attempt)}`);
  } catch {
    return; // 404: none
  }
  if (view.formFor !== attempt) return;
  const draft = out.draft;
  selectDisposition(draft.code);
  const d = draft.details || {};
  const put = (id, v) => {
    if ($(id) && v !== undefined && v !== null) $(id).value = v;
  };
  for (const f of ["appointment_at", "callback_at"]) {
    const parts = d[f] ? splitIso(d[f]) : null;
    if (parts) {
      put(`f-${f}`, parts.date);
      put(`f-${f}-hora`, parts.time);
    }
  }
  put("f-branch", d.branch);
  put("f-service", d.service);
  put("f-reason", d.reason);
  put("f-description", d.description);
  put("notas", d.notes);
  if (d.callback_scope) {
    for (const r of document.querySelectorAll('input[name="callback_scope"]')) r.checked = r.value === d.callback_scope;
  }
  for (const c of document.querySelectorAll("#f-opportunity_areas input")) c.checked = (d.opportunity_areas || []).includes(c.value);
  put("despues", draft.pause_code || "");
  view.pendingSubmit = true;
  view.pendingSince = Date.now();
  document.body.dataset.draft = attempt;
  $("btn-guardar").textContent = "Se guardará al colgar…";
}

// The call ended and the draft is still there (no API process saw the hang-up): send it
// again, now it is recorded at once.
async function flushDraft(me) {
  if (view.saving || Date.now() - (view.pendingSince || 0) < 3000) return;
  view.pendingSince = Date.now();
  let out;
  try {
    out = await api("GET", `${API}/agent/disposition/draft?attempt=${encodeURIComponent(me.call.attempt.uuid)}`);
  } catch {
    return; // recorded (or failed: command_rejected says so)
  }
  const def = me.call.dispositions.find((d) => d.code === out.draft.code) || { label_es: out.draft.code };
  await saveDraft(out.draft, def);
}

function resetSubmitLabel() {
  const button = $("btn-guardar");
  clear(button).append("Guardar tipificación ", el("kbd", {}, "Ctrl+Enter"));
}

$("form-tipificacion").addEventListener("submit", (ev) => {
  ev.preventDefault();
  submitDisposition();
});

// ------------------------------------------------------------------ timers
async function renderWrap(me) {
  const box = $("wrap");
  const st = me.state;
  if (st.state !== "wrap_up") {
    box.hidden = true;
    return;
  }
  const camp = await campaignDetails(st.campaign_id);
  box.hidden = false;
  box.dataset.limit = camp ? String(camp.wrap_up_seconds) : "";
}

function tick() {
  const me = view.me;
  if (!me) return;
  const st = me.state;
  const secs = st.since ? serverClock.secondsSince(st.since) : null;
  $("tiempo-estado").textContent = fmtDuration(secs);
  const wrap = $("wrap");
  if (!wrap.hidden) {
    const limit = Number(wrap.dataset.limit || 0);
    // Timers run on the API's clock: in the demo (×N) they run N times faster, like the dialer's.
    const demo = serverClock.speed !== 1 ? ` · reloj de la demo ×${String(serverClock.speed).replace(".", ",")}` : "";
    wrap.textContent = (limit ? `Tipificando ${fmtDuration(secs)} / ${fmtDuration(limit)}` : `Tipificando ${fmtDuration(secs)}`) + demo;
    wrap.classList.toggle("over", !!limit && secs > limit);
  }
}
setInterval(tick, 1000);

// ------------------------------------------------------------------ refresh loop
async function refresh() {
  let me;
  try {
    me = await api("GET", `${API}/agent/me`);
  } catch (err) {
    if (err.status !== 401) toast(messageEs(err), "error");
    return;
  }
  view.me = me;
  document.dispatchEvent(new CustomEvent("marcador:agent-me", { detail: me })); // agent_calls.js
  serverClock.sync(me.state.since, me.state.seconds_in_state);
  const campaignId = (me.call && me.call.campaign.id) || me.state.campaign_id;
  if (campaignId) {
    const camp = await campaignDetails(campaignId);
    if (camp) setZone(camp.timezone);
  }
  renderStatus(me);
  renderLogin(me);
  renderIdle(me);
  renderPreview(me);
  renderScreenPop(me);
  buildForm(me);
  await renderWrap(me);
  tick();
  document.body.dataset.ready = "1";
  if (view.pendingSubmit && me.state.state === "wrap_up" && me.call) flushDraft(me);
}

const refreshSoon = throttle(refresh, 150);
document.addEventListener("marcador:agent-refresh", () => refreshSoon()); // agent_calls.js

liveEvents(
  ["agent_state", "screen_pop", "command_rejected", "call_ended", "disposition_recorded", "call_control"],
  (type, data) => {
    if (type === "command_rejected") {
      const what = {
        agent_login: "No se pudo llamar a su extensión",
        agent_ready: "No se pudo pasar a disponible",
        agent_pause: "No se pudo poner en pausa",
        agent_logout: "No se pudo desconectar",
        agent_dispositioned: "El marcador no aceptó el cierre de la llamada",
        disposition_draft: "No se pudo registrar la tipificación guardada al colgar; revísela y guárdela de nuevo",
      }[data.command] || "El marcador rechazó la acción";
      if (data.command === "disposition_draft" && data.attempt === view.formFor) {
        view.pendingSubmit = false;
        resetSubmitLabel();
      }
      toast(data.error ? `${what}: ${data.error}` : what, "error", 8000);
    }
    if (type === "disposition_recorded" && view.pendingSubmit && data.attempt === view.formFor) {
      // The draft saved during the call was recorded at hang-up by the server.
      view.pendingSubmit = false;
      resetSubmitLabel();
      const def = (view.me && view.me.call && view.me.call.dispositions.find((d) => d.code === data.code)) || { label_es: data.code };
      recorded(def, {});
    }
    refreshSoon();
  },
  (ok) => {
    if (ok) refreshSoon();
  },
);
setInterval(refreshSoon, 5000);

// ------------------------------------------------------------------ keyboard
document.addEventListener("keydown", (ev) => {
  if (ev.key === "F2") {
    ev.preventDefault();
    goReady();
    return;
  }
  if (ev.key === "F3") {
    ev.preventDefault();
    goPause();
    return;
  }
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    if (!$("tipificacion").hidden) {
      ev.preventDefault();
      submitDisposition();
    }
    return;
  }
  const tag = (ev.target && ev.target.tagName) || "";
  if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || ev.ctrlKey || ev.altKey || ev.metaKey) return;
  if (/^[1-9]$/.test(ev.key) && !$("tipificacion").hidden) {
    const call = view.me && view.me.call;
    const def = call && call.dispositions[Number(ev.key) - 1];
    if (def) {
      ev.preventDefault();
      selectDisposition(def.code);
    }
  }
});

loadClock().then(refresh);
