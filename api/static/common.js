// Shared helpers for Marcador's pages: API calls with CSRF, Spanish error messages,
// DOM building without innerHTML, time formatting, the live event stream and toasts.

export const API = "/api/v1";
const CSRF_COOKIE = "marcador_csrf";

export class ApiFailure extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...rest] = part.trim().split("=");
    if (k === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const AUTH_CODES = new Set(["unauthorized", "session_expired", "no_session", "invalid_session", "account_disabled"]);

// Calls the JSON API. Sends the CSRF token on unsafe methods; a lost session goes to sign-in.
export async function api(method, path, body, { redirectOn401 = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method)) headers["X-CSRF-Token"] = cookie(CSRF_COOKIE);
  let response;
  try {
    response = await fetch(path.startsWith("/") ? path : `${API}/${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (err) {
    throw new ApiFailure(0, "network", "network error", {});
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const e = (data && data.error) || {};
    const failure = new ApiFailure(response.status, e.code || `http_${response.status}`, e.message || "", e.details);
    if (response.status === 401 && redirectOn401 && AUTH_CODES.has(failure.code)) {
      goToLogin(failure.code);
    }
    throw failure;
  }
  return data;
}

export function goToLogin(reason) {
  const next = encodeURIComponent(location.pathname);
  const why = reason && reason !== "unauthorized" ? `&motivo=${encodeURIComponent(reason)}` : "";
  location.assign(`/ingresar?siguiente=${next}${why}`);
}

const FIELD_ES = {
  appointment_at: "fecha y hora de la cita",
  branch: "sede",
  service: "servicio",
  callback_at: "fecha y hora de la nueva llamada",
  callback_scope: "quién devuelve la llamada",
  reason: "motivo",
  opportunity_areas: "áreas de oportunidad",
  description: "descripción de la queja",
};

// A sentence in Spanish for an API error code (the API itself answers in English).
export function messageEs(err) {
  if (!(err instanceof ApiFailure)) return "Ocurrió un error inesperado. Intente de nuevo.";
  const d = err.details || {};
  switch (err.code) {
    case "network":
      return "Sin conexión con el servidor. Revise la red e intente de nuevo.";
    case "invalid_credentials":
      return "Usuario o contraseña incorrectos.";
    case "too_many_attempts": {
      const mins = Math.max(1, Math.ceil((Number(d.retry_after) || 900) / 60));
      return `Demasiados intentos fallidos. Espere ${mins} minuto${mins === 1 ? "" : "s"} e intente de nuevo.`;
    }
    case "session_expired":
      return "Su sesión expiró. Ingrese de nuevo.";
    case "no_session":
    case "invalid_session":
    case "unauthorized":
      return "Su sesión terminó. Ingrese de nuevo.";
    case "account_disabled":
      return "Su cuenta está desactivada. Hable con el administrador.";
    case "csrf_failed":
      return "La página quedó desactualizada. Recárguela (F5) e intente de nuevo.";
    case "forbidden":
      return "Su usuario no tiene permiso para esta acción.";
    case "unknown_placeholder": {
      const unknown = (d.unknown || []).map((n) => `{${n}}`).join(", ");
      const valid = Object.keys(d.valid || {}).map((n) => `{${n}}`).join(", ");
      return `El guion usa marcadores desconocidos: ${unknown}. Marcadores válidos: ${valid}.`;
    }
    case "not_found":
      return "No se encontró el registro (o no tiene acceso a él).";
    case "validation_error":
      return "Revise los datos: hay campos vacíos o con un formato no válido.";
    case "malformed_json":
      return "La solicitud llegó dañada. Recargue la página.";
    case "payload_too_large":
      return "El contenido es demasiado grande.";
    case "invalid_disposition": {
      if (Array.isArray(d.missing) && d.missing.length) {
        return `Faltan datos obligatorios: ${d.missing.map((f) => FIELD_ES[f] || f).join(", ")}.`;
      }
      if (d.field) return `La ${FIELD_ES[d.field] || "fecha"} debe ser futura.`;
      return "Los datos de la tipificación no son válidos. Revíselos.";
    }
    case "unknown_disposition":
      return "Esa tipificación no existe en esta campaña.";
    case "call_in_progress":
      return "La llamada sigue en curso: guarde la tipificación cuando el cliente cuelgue.";
    case "already_recorded":
      return "Esta llamada ya fue tipificada.";
    case "not_connected":
      return "Esta llamada no se conectó con un agente: no lleva tipificación.";
    case "not_logged_in":
      return "Primero conéctese a una campaña con su extensión.";
    case "already_logged_in":
      return "Ya está conectado a una campaña.";
    case "campaign_not_active":
      return "La campaña no está activa: solo se puede ingresar a campañas en curso o en pausa.";
    case "extension_required":
      return "Escriba la extensión de su softphone.";
    case "disposition_required":
      return "Guarde la tipificación de la llamada antes de pasar a disponible.";
    case "connecting":
      return "Su extensión aún no está en la sala: conteste la llamada del marcador y quedará disponible al entrar.";
    case "login_refused":
      return "El marcador no aceptó el ingreso: ningún marcador atiende esta campaña en este momento. Intente de nuevo en unos segundos o avise al supervisor.";
    case "unknown_pause_code":
      return "Ese motivo de pausa no existe.";
    case "invalid_transition":
      return "La campaña no admite ese cambio en su estado actual.";
    case "campaign_finished":
      return "La campaña ya finalizó y no se puede modificar.";
    case "campaign_ended":
      return "La fecha de fin de la campaña ya pasó.";
    case "no_extension":
      return "Configure su propia extensión (softphone) para escuchar llamadas.";
    case "agent_not_in_call":
      return "El agente no está en una llamada: la escucha empieza con una llamada en curso.";
    case "spy_failed":
      return `No se pudo llamar a su extensión para la escucha${d.reason ? `: ${d.reason}` : "."}`;
    case "no_preview":
      return "No hay un cliente en vista previa.";
    case "agent_state_conflict":
      return "El estado del agente cambió mientras tanto. Intente de nuevo.";
    default:
      if (err.status === 404) return "No disponible.";
      if (err.status >= 500) return "Error del servidor. Intente de nuevo en un momento.";
      return `No se pudo completar la acción (${err.code}).`;
  }
}

// el("div", {class: "x", onclick: fn}, "text", child) — never parses HTML.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}

// Every time on the pages is shown in one time zone (the campaign's; the API's default until a
// page knows its campaign), labelled, as dd/mm/aaaa and 24 h (never the browser's locale).
export const zone = { tz: "America/Bogota", label: "Bogotá" };

const CITY_ES = { Bogota: "Bogotá", Mexico_City: "Ciudad de México", Panama: "Panamá", Sao_Paulo: "São Paulo", New_York: "Nueva York" };

export function zoneLabel(tz) {
  const city = String(tz || "").split("/").pop();
  return CITY_ES[city] || city.replaceAll("_", " ");
}

// Show times in `tz` from now on (labelled with its city).
export function setZone(tz) {
  if (!tz || tz === zone.tz) return;
  try {
    new Intl.DateTimeFormat("es-CO", { timeZone: tz });
  } catch {
    return;
  }
  zone.tz = tz;
  zone.label = zoneLabel(tz);
  formatters.clear();
}

const formatters = new Map();
const WEEKDAYS = ["dom", "lun", "mar", "mié", "jue", "vie", "sáb"];

// {year, month, day, hour, minute, weekday} of a Date in the display time zone.
export function zoneParts(d) {
  let f = formatters.get(zone.tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone: zone.tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", weekday: "short", hourCycle: "h23" });
    formatters.set(zone.tz, f);
  }
  const out = {};
  for (const p of f.formatToParts(d)) out[p.type] = p.value;
  const wd = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(out.weekday);
  return { year: out.year, month: out.month, day: out.day, hour: out.hour === "24" ? "00" : out.hour, minute: out.minute, second: out.second, weekday: WEEKDAYS[wd] || "" };
}

function parse(iso) {
  if (iso === null || iso === undefined || iso === "") return null;
  const d = iso instanceof Date ? iso : new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

const tag = (text, label) => (label === false ? text : `${text} (${zone.label})`);

// "12/08/2026 09:00 (Bogotá)"; {label: false} leaves the zone out (a labelled table header).
export function fmtDate(iso, { label = true } = {}) {
  const d = parse(iso);
  if (!d) return "–";
  const p = zoneParts(d);
  return tag(`${p.day}/${p.month}/${p.year} ${p.hour}:${p.minute}`, label);
}

// "19:00 (Bogotá)"
export function fmtTime(iso, { label = true, seconds = false } = {}) {
  const d = parse(iso);
  if (!d) return "–";
  const p = zoneParts(d);
  return tag(`${p.hour}:${p.minute}${seconds ? `:${p.second}` : ""}`, label);
}

// "lun 12/08 09:00 (Bogotá)"
export function fmtWhen(iso, { label = true } = {}) {
  const d = parse(iso);
  if (!d) return "–";
  const p = zoneParts(d);
  return tag(`${p.weekday} ${p.day}/${p.month} ${p.hour}:${p.minute}`, label);
}

export function pct(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return `${(x * 100).toFixed(digits).replace(".", ",")} %`;
}

export const AGENT_STATES = {
  logged_out: "Desconectado",
  ready: "Disponible",
  paused: "En pausa",
  reserved: "Reservado",
  in_call: "En llamada",
  wrap_up: "Tipificando",
};

export const OUTCOMES = {
  answered_connected: "Contestó (conectada)",
  abandoned: "Abandonada",
  machine: "Contestadora",
  early_hangup: "Colgó al contestar",
  busy: "Ocupado",
  no_answer: "No contestó",
  congestion: "Congestión",
  rejected: "Rechazada",
  invalid_number: "Número inválido",
  failed: "Falla de red",
  cancelled: "Cancelada",
};

export const CAMPAIGN_STATUS = {
  draft: "Borrador",
  running: "En curso",
  paused: "En pausa",
  finished: "Finalizada",
};

export const DIAL_MODES = {
  predictive: "Predictivo",
  progressive: "Progresivo",
  preview: "Vista previa",
  fixed_ratio: "Relación fija",
};

// Why the dialer applies the mode it applies (the pacer's decision reason, GET .../live).
// The reasons that just repeat the configured mode map to "".
export const PACING_REASONS = {
  preview: "",
  progressive: "",
  fixed_ratio: "",
  risk_bound: "riesgo de abandono bajo control",
  line_cap: "máximo de líneas por agente",
  no_agents: "sin agentes libres pronto",
  cold_start: "arranque: aprendiendo",
  cap_warmup: "arranque del día: pocas respuestas para el tope de abandono",
  small_team: "equipo pequeño: progresivo",
  hard_cap_today: "tope de abandono de hoy alcanzado",
  hard_cap_30d: "tope de abandono 30 días alcanzado",
};

export function pacingReason(reason) {
  if (!reason) return "";
  return reason in PACING_REASONS ? PACING_REASONS[reason] : reason;
}

export const PAUSE_FALLBACK = {
  connecting: "Conectando",
  break: "Descanso",
  lunch: "Almuerzo",
  training: "Capacitación",
  manual_call: "Llamada manual",
  meeting: "Reunión",
  supervisor: "Pausa por supervisor",
};

// The API's clock (GET /api/v1/clock): an anchor (server time at a local instant) and its
// speed (the demo runs faster than real time: its timers must too, or they disagree with the
// dialer's). now() = anchor + elapsed local time x speed.
export const serverClock = {
  base: Date.now(),
  local: Date.now(),
  speed: 1,
  sync(sinceIso, secondsInState) {
    if (!sinceIso || secondsInState === null || secondsInState === undefined) return;
    const t = Date.parse(sinceIso);
    if (!Number.isNaN(t)) this.anchor(t + secondsInState * 1000);
  },
  setNow(iso) {
    const t = Date.parse(iso);
    if (!Number.isNaN(t)) this.anchor(t);
  },
  anchor(ms) {
    this.base = ms;
    this.local = Date.now();
  },
  now() {
    return this.base + (Date.now() - this.local) * this.speed;
  },
  secondsSince(iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? null : Math.max(0, (this.now() - t) / 1000);
  },
};

// Load the API's clock (now, speed, default time zone) once per page; shows a "reloj de la
// demo ×N" badge in the top bar when the clock runs faster than real time.
export async function loadClock() {
  try {
    const c = await api("GET", `${API}/clock`);
    serverClock.speed = c.speed > 0 ? c.speed : 1;
    serverClock.setNow(c.now);
    setZone(c.timezone);
    const badge = $("reloj-demo");
    if (badge) {
      badge.hidden = serverClock.speed === 1;
      badge.textContent = `Reloj de la demo ×${String(serverClock.speed).replace(".", ",")}`;
      badge.title = `Los tiempos en pantalla corren a ${serverClock.speed} veces el tiempo real, como el marcador de la demo.`;
    }
  } catch {
    // keep the browser's clock: the page still works
  }
  return serverClock;
}

export function toast(text, kind = "info", ms = 5000) {
  const box = $("avisos");
  if (!box) return;
  const item = el("div", { class: `toast toast-${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), ms);
}

// The live feed (SSE). Reconnects by itself (EventSource + the server's retry hint).
export function liveEvents(types, onEvent, onStatus) {
  const source = new EventSource(`${API}/events/stream`, { withCredentials: true });
  const status = (ok) => {
    const badge = $("conexion");
    if (badge) {
      badge.hidden = false;
      badge.textContent = ok ? "En vivo" : "Reconectando…";
      badge.className = ok ? "conn conn-ok" : "conn conn-bad";
    }
    if (onStatus) onStatus(ok);
  };
  source.addEventListener("open", () => status(true));
  source.addEventListener("error", () => status(false));
  for (const type of types) {
    source.addEventListener(type, (ev) => {
      let payload = null;
      try {
        payload = JSON.parse(ev.data);
      } catch {
        return;
      }
      onEvent(type, payload.data || {}, ev.lastEventId);
    });
  }
  return source;
}

// Runs fn at most once per `ms`, always including the last call (trailing edge).
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return () => {
    const wait = last + ms - Date.now();
    if (wait <= 0) {
      last = Date.now();
      fn();
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn();
      }, wait);
    }
  };
}

let beforeSignOut = null;

// A page may log the agent out of the dialer before the web session ends.
export function onSignOut(fn) {
  beforeSignOut = fn;
}

function wireLogout() {
  const button = $("salir");
  if (!button) return;
  button.addEventListener("click", async () => {
    try {
      if (beforeSignOut) await beforeSignOut();
    } catch {
      // best effort
    }
    try {
      await api("POST", `${API}/auth/logout`, undefined, { redirectOn401: false });
    } catch {
      // signed out already
    }
    location.assign("/ingresar?motivo=salida");
  });
}

wireLogout();
