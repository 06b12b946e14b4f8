// Reportes page: the month's indicators (GET /api/v1/reports/indicators) as KPI cards, Pareto
// charts, tables and bar charts, with the filters the API supports, and the stored monthly
// report (XLSX + printable HTML) to download or generate (/api/v1/reports/runs).
//
// The page marks its progress on <body data-report="loading|ready|error"> and
// data-report-month, so browser tests can wait on conditions instead of time.
import { $, API, ApiFailure, api, clear, el, fmtDate, fmtDuration, loadClock, messageEs } from "./common.js";
import { fmtInt, fmtPct, groupedBars, hbarChart, lineChart, paretoChart, paretoRows } from "./reportcharts.js";

const box = $("reportes");
const REPORTS = `${API}/reports`;
const MONTHS = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"];
const PAUSES = {
  break: "Descanso",
  almuerzo: "Almuerzo",
  lunch: "Almuerzo",
  capacitacion: "Capacitación",
  training: "Capacitación",
  bano: "Baño",
  reunion: "Reunión",
  meeting: "Reunión",
  manual_call: "Llamada manual",
  supervisor: "Pausa por supervisor",
  connecting: "Conectando",
};
const TRIGGERS = { api: "generado a pedido", cron: "programado", cli: "desde la consola" };
const RUN_STATUS = { done: "listo", running: "generándose", failed: "falló", pending: "en cola" };

let options = { campaigns: [], campaign_types: [], brands: [], branches: [], agents: [] };
let current = null; // {month, query, body}
let seq = 0;

function setState(state, month) {
  document.body.dataset.report = state;
  if (month !== undefined) document.body.dataset.reportMonth = month;
}

// Spanish message for the reports API's own error codes; the rest goes to messageEs.
function errorEs(err) {
  if (err instanceof ApiFailure) {
    if (err.code === "invalid_report_filter") return "El periodo no es válido: elija un mes entre enero de 2000 y diciembre de 2100.";
    if (err.code === "report_not_ready") return "El informe todavía se está generando. Intente de nuevo en un momento.";
    if (err.code === "forbidden" && Array.isArray(err.details.campaign_ids)) return "No está asignado a esa campaña: elija otra o «Todas».";
    if (err.code === "forbidden") return "Los reportes son solo para supervisores y administradores.";
  }
  return messageEs(err);
}

const LONG_DATE = new Intl.DateTimeFormat("es-CO", { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });

function monthLabel(month) {
  const [y, m] = month.split("-").map(Number);
  return `${MONTHS[m - 1]} de ${y}`;
}

// "2026-10-31" -> "31 de octubre de 2026" (a calendar day, no time zone shift).
function longDate(isoDay) {
  const d = new Date(`${isoDay}T00:00:00Z`);
  return Number.isNaN(d.getTime()) ? isoDay : LONG_DATE.format(d);
}

// The month picker: a month select and a year select (the browser's own <input type=month>
// speaks the browser's language, not necessarily Spanish).
function fillMonthPicker(defaultMonth) {
  const [dy, dm] = (defaultMonth || "").split("-").map(Number);
  const year = dy || new Date().getFullYear();
  MONTHS.forEach((name, i) => {
    $("f-mes-num").append(el("option", { value: String(i + 1).padStart(2, "0") }, name.replace(/^./, (c) => c.toUpperCase())));
  });
  for (let y = year + 1; y >= 2000; y--) $("f-anio").append(el("option", { value: String(y) }, String(y)));
  $("f-mes-num").value = String(dm || 1).padStart(2, "0");
  $("f-anio").value = String(year);
}

function fillSelect(select, items) {
  for (const item of items) {
    const value = typeof item === "object" ? item.id : item;
    const label = typeof item === "object" ? item.label : item;
    select.append(el("option", { value: String(value) }, label));
  }
}

// The filter as repeated query parameters (GET) and as the JSON body of POST /runs.
function readFilter() {
  const month = `${$("f-anio").value}-${$("f-mes-num").value}`;
  const pick = (id) => $(id).value;
  const params = new URLSearchParams({ month });
  const body = { month, campaign_ids: [], campaign_types: [], brands: [], branches: [], agent_ids: [] };
  if (pick("f-campana")) {
    params.append("campaign_id", pick("f-campana"));
    body.campaign_ids.push(Number(pick("f-campana")));
  }
  if (pick("f-tipo")) {
    params.append("campaign_type", pick("f-tipo"));
    body.campaign_types.push(pick("f-tipo"));
  }
  if (pick("f-marca")) {
    params.append("brand", pick("f-marca"));
    body.brands.push(pick("f-marca"));
  }
  if (pick("f-sede")) {
    params.append("branch", pick("f-sede"));
    body.branches.push(pick("f-sede"));
  }
  if (pick("f-agente")) {
    params.append("agent_id", pick("f-agente"));
    body.agent_ids.push(Number(pick("f-agente")));
  }
  return { month, query: params.toString(), body };
}

// ------------------------------------------------------------------ building blocks
function kpi(key, label, value, note, level = "") {
  return el(
    "div",
    { class: `kpi rep-kpi${level ? ` level-${level}` : ""}`, "data-kpi": key },
    el("div", { class: "kpi-label" }, label),
    el("div", { class: "kpi-value" }, value),
    note ? el("div", { class: "kpi-note" }, note) : null,
  );
}

// cols: [{title, get(row), kind: "num"|"pct"|"dur"|"text"}]
function table(cols, rows, total, { id, empty = "Sin datos en el periodo." } = {}) {
  if (!rows.length && !total) return el("p", { class: "muted small" }, empty);
  const fmt = (col, row) => {
    const v = col.get(row);
    if (col.kind === "pct") return fmtPct(v);
    if (col.kind === "dur") return fmtDuration(v);
    if (col.kind === "num") return typeof v === "number" ? (Number.isInteger(v) ? fmtInt(v) : v.toLocaleString("es-CO", { minimumFractionDigits: 2, maximumFractionDigits: 2 })) : "–";
    return v === null || v === undefined || v === "" ? "–" : String(v);
  };
  const cell = (tag, col, row) => el(tag, { class: col.kind && col.kind !== "text" ? "num" : null }, fmt(col, row));
  return el(
    "table",
    { class: "table rep-table", id },
    el("thead", {}, el("tr", {}, cols.map((c) => el("th", { class: c.kind && c.kind !== "text" ? "num" : null }, c.title)))),
    el(
      "tbody",
      {},
      rows.map((r) => el("tr", {}, cols.map((c) => cell("td", c, r)))),
      total ? el("tr", { class: "total" }, cols.map((c) => cell("td", c, total))) : null,
    ),
  );
}

function put(id, ...nodes) {
  clear($(id)).append(...nodes.filter(Boolean));
}

// ------------------------------------------------------------------ sections
function renderKpis(report) {
  const e = report.effectiveness.total;
  const c = report.contactability.total;
  const r = report.recovery.total;
  const a = report.appointments.total;
  const s = report.satisfaction.total;
  const q = report.pqrs.total;
  const cm = report.compliance;
  const cap = cm.cap_pct;
  const rows = cm.rows;
  const maxDaily = cm.total.max_daily_rate_pct;
  const rolling = rows.map((x) => x.rolling30_rate_pct).filter((x) => x !== null && x !== undefined);
  const worst30 = rolling.length ? Math.max(...rolling) : null;
  const daysOver = cm.total.days_over_cap;
  const outside = cm.total.outside_window;
  put(
    "kpis",
    kpi("efectividad", "Efectividad de llamadas", fmtPct(e.effectiveness_pct), `${fmtInt(e.effective_calls)} efectivas de ${fmtInt(e.total_calls)} llamadas`),
    kpi("contactabilidad", "Contactabilidad", fmtPct(c.contactability_pct), `${fmtInt(c.leads_contacted)} de ${fmtInt(c.leads_worked)} clientes gestionados`),
    kpi("recuperados", "Clientes recuperados", fmtPct(r.recovered_pct), `${fmtInt(r.recovered)} con cita de ${fmtInt(r.leads_in_list)} en lista`),
    kpi("cita-cumplida", "Recuperados con cita cumplida", fmtPct(r.kept_pct), `${fmtInt(r.kept)} de ${fmtInt(r.leads_in_list)} clientes en lista`),
    kpi("cumplimiento-citas", "Cumplimiento de citas", fmtPct(a.fulfilment_pct), `${fmtInt(a.kept)} cumplidas, ${fmtInt(a.no_show)} no asistió`),
    kpi(
      "abandono-dia",
      "Abandono diario máximo",
      fmtPct(maxDaily),
      daysOver ? `${fmtInt(daysOver)} día${daysOver === 1 ? "" : "s"} sobre el tope de ${fmtPct(cap)}` : `Ningún día sobre el tope de ${fmtPct(cap)}`,
      maxDaily === null ? "" : daysOver ? "danger" : "ok",
    ),
    kpi("abandono-30", "Abandono 30 días", fmtPct(worst30), `Campaña más alta · tope ${fmtPct(cap)}`, worst30 === null ? "" : worst30 > cap ? "danger" : "ok"),
    kpi("fuera-horario", "Llamadas fuera de horario", fmtInt(outside), outside ? "Debe ser 0 · detalle en el XLSX" : "Debe ser 0 (Ley 2300 de 2023)", outside ? "danger" : "ok"),
    kpi("satisfaccion", "Seguimientos en ventana", fmtPct(s.in_window_pct), `${fmtInt(s.in_window)} de ${fmtInt(s.leads_worked)} clientes`),
    kpi("pqrs-vencidas", "PQRS vencidas al corte", fmtInt(q.overdue), `${fmtInt(q.opened)} abiertas y ${fmtInt(q.closed)} cerradas en el periodo`, q.overdue ? "danger" : ""),
  );
}

function renderContactability(report) {
  const c = report.contactability;
  const rows = paretoRows(c.reasons);
  const total = rows.reduce((n, x) => n + x.count, 0);
  put("pareto-no-contacto", paretoChart(`Motivos de no contacto (${fmtInt(total)} clientes)`, rows, { id: "chart-no-contacto" }));
  put(
    "tabla-contactabilidad",
    table(
      [
        { title: "Campaña", get: (x) => x.campaign },
        { title: "Gestionados", get: (x) => x.leads_worked, kind: "num" },
        { title: "Contactados", get: (x) => x.leads_contacted, kind: "num" },
        { title: "Contactabilidad", get: (x) => x.contactability_pct, kind: "pct" },
      ],
      c.rows,
      c.rows.length ? { ...c.total, campaign: "Total" } : null,
    ),
  );
}

function renderAppointments(report) {
  const a = report.appointments;
  const rows = paretoRows(a.not_booked_reasons);
  const total = rows.reduce((n, x) => n + x.count, 0);
  put("pareto-no-cita", paretoChart(`Motivos de no agendamiento (${fmtInt(total)} clientes contactados sin cita)`, rows, { id: "chart-no-cita" }));
  const t = a.total;
  const chart = hbarChart(
    "Citas del periodo",
    [
      { label: "Agendadas", value: t.booked },
      { label: "Cumplidas", value: t.kept, kind: "ok" },
      { label: "No asistió", value: t.no_show, kind: "bad" },
      { label: "Canceladas", value: t.cancelled, kind: "muted" },
      { label: "Pendientes", value: t.pending, kind: "muted" },
    ],
    { width: 560, id: "chart-citas" },
  );
  const branches = table(
    [
      { title: "Sede", get: (x) => x.branch },
      { title: "Agendadas", get: (x) => x.booked, kind: "num" },
      { title: "Cumplidas", get: (x) => x.kept, kind: "num" },
      { title: "No asistió", get: (x) => x.no_show, kind: "num" },
      { title: "Cumplimiento", get: (x) => x.fulfilment_pct, kind: "pct" },
    ],
    a.by_branch,
    null,
    { empty: "Sin citas en el periodo." },
  );
  put("citas", el("div", {}, chart), el("div", { class: "grid-wrap" }, branches));
}

function renderSatisfaction(report) {
  const s = report.satisfaction;
  const rows = s.pareto.map((p) => ({ ...p, cumulative: p.cumulative_pct }));
  put("pareto-areas", paretoChart(`Pareto de áreas de oportunidad (${fmtInt(s.mentions)} menciones)`, rows, { id: "chart-areas", width: 700, height: 320 }));
  const vital = s.pareto.filter((p) => p.vital).map((p) => p.label);
  $("satisfaccion-nota").textContent =
    `Llamadas desde el día ${s.window_first_day} después de la compra o el servicio, durante ${s.window_days} días. ` +
    (vital.length ? `Áreas vitales (las que suman el 80 %, entre 3 y 4): ${vital.join(", ")}.` : "Sin áreas de oportunidad registradas en el periodo.");
  put(
    "tabla-areas",
    table(
      [
        { title: "Área", get: (x) => x.label },
        { title: "Menciones", get: (x) => x.count, kind: "num" },
        { title: "%", get: (x) => x.pct, kind: "pct" },
        { title: "% acumulado", get: (x) => x.cumulative_pct, kind: "pct" },
        { title: "Vital", get: (x) => (x.vital ? "Sí" : "No") },
      ],
      s.pareto,
      null,
      { empty: "Sin áreas de oportunidad en el periodo." },
    ),
    table(
      [
        { title: "Campaña", get: (x) => x.campaign },
        { title: "Gestionados", get: (x) => x.leads_worked, kind: "num" },
        { title: "En ventana", get: (x) => x.in_window, kind: "num" },
        { title: "Tardíos", get: (x) => x.late, kind: "num" },
        { title: "% en ventana", get: (x) => x.in_window_pct, kind: "pct" },
      ],
      s.rows,
      s.rows.length ? { ...s.total, campaign: "Total" } : null,
      { empty: "" },
    ),
  );
}

function renderPqrs(report) {
  const q = report.pqrs;
  $("pqrs-nota").textContent = `Vencidas: abiertas al corte (${longDate(q.cutoff)}) después del plazo de 15 días hábiles.`;
  put(
    "grafico-pqrs",
    groupedBars(
      "PQRS por tipo",
      q.rows.map((r) => ({ label: r.label, values: [r.opened, r.closed, r.overdue] })),
      [
        { name: "Abiertas", kind: "s1" },
        { name: "Cerradas", kind: "s2" },
        { name: "Vencidas", kind: "bad" },
      ],
      { id: "chart-pqrs" },
    ),
  );
  put(
    "tabla-pqrs",
    table(
      [
        { title: "Tipo", get: (x) => x.label },
        { title: "Abiertas", get: (x) => x.opened, kind: "num" },
        { title: "Cerradas", get: (x) => x.closed, kind: "num" },
        { title: "A tiempo", get: (x) => x.closed_on_time, kind: "num" },
        { title: "Tarde", get: (x) => x.closed_late, kind: "num" },
        { title: "Vencidas", get: (x) => x.overdue, kind: "num" },
        { title: "Abiertas al corte", get: (x) => x.open_at_cutoff, kind: "num" },
      ],
      q.rows,
      q.rows.length ? q.total : null,
    ),
  );
}

function renderWhatsApp(report) {
  const wa = report.whatsapp;
  const funnel = wa.funnel.map((x) => ({ label: x.label, value: x.count, kind: x.code === "failed" ? "bad" : "" }));
  put("grafico-whatsapp", hbarChart("Mensajes de respaldo por etapa", funnel, { id: "chart-whatsapp" }));
  put(
    "tabla-whatsapp",
    table(
      [
        { title: "Campaña", get: (x) => x.campaign },
        { title: "En cola", get: (x) => x.queued, kind: "num" },
        { title: "Enviados", get: (x) => x.sent, kind: "num" },
        { title: "Entregados", get: (x) => x.delivered, kind: "num" },
        { title: "Leídos", get: (x) => x.read, kind: "num" },
        { title: "Respuestas", get: (x) => x.replied, kind: "num" },
        { title: "Fallidos", get: (x) => x.failed, kind: "num" },
      ],
      wa.rows,
      wa.rows.length ? { ...wa.total, campaign: "Total" } : null,
      { empty: "" },
    ),
  );
}

function renderAbandon(report) {
  const cm = report.compliance;
  const names = new Map(cm.rows.map((r) => [r.campaign_id, r.campaign]));
  const days = [...new Set(cm.daily.map((d) => d.day))].sort();
  const index = new Map(days.map((d, i) => [d, i]));
  const byCampaign = new Map();
  for (const d of cm.daily) {
    if (!byCampaign.has(d.campaign_id)) byCampaign.set(d.campaign_id, { daily: days.map(() => null), rolling: days.map(() => null) });
    const s = byCampaign.get(d.campaign_id);
    s.daily[index.get(d.day)] = d.rate_pct;
    s.rolling[index.get(d.day)] = d.rolling_rate_pct;
  }
  const labels = days.map((d) => String(Number(d.slice(8, 10))));
  const series = (key) => [...byCampaign.entries()].map(([id, s]) => ({ name: names.get(id) || `#${id}`, values: s[key] }));
  put(
    "graficos-abandono",
    el("div", {}, lineChart("Abandono diario por campaña", labels, series("daily"), { cap: cm.cap_pct, id: "chart-abandono-dia" })),
    el("div", {}, lineChart("Abandono de los últimos 30 días por campaña", labels, series("rolling"), { cap: cm.cap_pct, id: "chart-abandono-30" })),
  );
}

function renderCampaigns(report) {
  const eff = new Map(report.effectiveness.rows.map((r) => [r.campaign_id, r]));
  const comp = new Map(report.compliance.rows.map((r) => [r.campaign_id, r]));
  const ids = [...new Set([...eff.keys(), ...comp.keys()])];
  const types = new Map(options.campaign_types.map((t) => [t.id, t.label]));
  const rows = ids.map((id) => ({ ...(comp.get(id) || {}), ...(eff.get(id) || {}) }));
  const total = { ...report.compliance.total, ...report.effectiveness.total, campaign: "Total", campaign_type: null };
  put(
    "tabla-campanas",
    table(
      [
        { title: "Campaña", get: (x) => x.campaign },
        { title: "Tipo", get: (x) => (x.campaign_type ? types.get(x.campaign_type) || x.campaign_type : "") },
        { title: "Llamadas", get: (x) => x.total_calls, kind: "num" },
        { title: "Efectivas", get: (x) => x.effective_calls, kind: "num" },
        { title: "Efectividad", get: (x) => x.effectiveness_pct, kind: "pct" },
        { title: "Abandono", get: (x) => x.abandon_rate_pct, kind: "pct" },
        { title: "Máx. diario", get: (x) => x.max_daily_rate_pct, kind: "pct" },
        { title: "30 días", get: (x) => x.rolling30_rate_pct, kind: "pct" },
        { title: "Días sobre tope", get: (x) => x.days_over_cap, kind: "num" },
        { title: "Fuera de horario", get: (x) => x.outside_window, kind: "num" },
        { title: "Bloqueos DNC", get: (x) => x.dnc_blocked, kind: "num" },
        { title: "Bloqueos RNE", get: (x) => x.rne_blocked, kind: "num" },
      ],
      rows,
      rows.length ? total : null,
      { id: "tabla-campanas-datos" },
    ),
  );
}

function renderAgents(report) {
  const ag = report.agents;
  const pauses = new Map();
  for (const p of ag.pauses) {
    const list = pauses.get(p.agent_id) || [];
    list.push(`${PAUSES[p.code] || p.label || p.code} ${fmtDuration(p.value)}`);
    pauses.set(p.agent_id, list);
  }
  const top = new Map();
  for (const d of ag.dispositions) {
    const list = top.get(d.agent_id) || [];
    list.push(d);
    top.set(d.agent_id, list);
  }
  const topText = (id) =>
    (top.get(id) || [])
      .sort((a, b) => b.value - a.value)
      .slice(0, 3)
      .map((d) => `${d.label} ${fmtInt(d.value)}`)
      .join(" · ");
  put(
    "tabla-agentes",
    table(
      [
        { title: "Agente", get: (x) => x.agent },
        { title: "Llamadas", get: (x) => x.calls, kind: "num" },
        { title: "Conversación", get: (x) => x.talk_seconds, kind: "dur" },
        { title: "Conectado", get: (x) => x.logged_seconds, kind: "dur" },
        { title: "En pausa", get: (x) => x.paused_seconds, kind: "dur" },
        { title: "Ocupación", get: (x) => x.occupancy_pct, kind: "pct" },
        { title: "Llamadas/hora", get: (x) => x.calls_per_hour, kind: "num" },
        { title: "Conversación media", get: (x) => x.avg_talk_seconds, kind: "dur" },
        { title: "Pausas por motivo", get: (x) => (x.agent_id === null ? "" : (pauses.get(x.agent_id) || []).join(" · ")) },
        { title: "Tipificaciones más usadas", get: (x) => (x.agent_id === null ? "" : topText(x.agent_id)) },
      ],
      ag.rows,
      ag.rows.length ? { ...ag.total, agent: "Total" } : null,
      { id: "tabla-agentes-datos", empty: "Sin actividad de agentes en el periodo." },
    ),
  );
}

// ------------------------------------------------------------------ stored reports
function describeRun(run) {
  const f = run.filters || {};
  const parts = [];
  const names = new Map(options.campaigns.map((c) => [Number(c.id), c.label]));
  const agents = new Map(options.agents.map((a) => [Number(a.id), a.label]));
  if (f.campaign_ids && f.campaign_ids.length && f.campaign_ids.length < options.campaigns.length) parts.push(f.campaign_ids.map((i) => names.get(i) || `#${i}`).join(", "));
  if (f.campaign_types && f.campaign_types.length) parts.push(f.campaign_types.map((t) => (options.campaign_types.find((x) => x.id === t) || {}).label || t).join(", "));
  if (f.brands && f.brands.length) parts.push(`marca ${f.brands.join(", ")}`);
  if (f.branches && f.branches.length) parts.push(`sede ${f.branches.join(", ")}`);
  if (f.agent_ids && f.agent_ids.length) parts.push(f.agent_ids.map((i) => agents.get(i) || `#${i}`).join(", "));
  return parts.length ? parts.join(" · ") : "Todas las campañas";
}

function linkButton(id, url) {
  const a = $(id);
  if (url) {
    a.setAttribute("href", url);
    a.removeAttribute("aria-disabled");
  } else {
    a.removeAttribute("href");
    a.setAttribute("aria-disabled", "true");
  }
}

async function loadRuns(month) {
  const out = $("informes");
  let page;
  try {
    page = await api("GET", `${REPORTS}/runs?label=${encodeURIComponent(month)}&limit=5`);
  } catch (err) {
    clear(out).append(el("p", { class: "muted small" }, errorEs(err)));
    return;
  }
  if (!current || current.month !== month) return;
  const ready = page.items.find((r) => r.status === "done");
  linkButton("btn-xlsx", ready ? ready.xlsx_url : null);
  linkButton("btn-html", ready ? ready.html_url : null);
  $("btn-generar").textContent = ready ? "Generar de nuevo" : "Generar informe";
  if (!page.items.length) {
    clear(out).append(el("p", { class: "muted small" }, `Todavía no hay un informe guardado de ${monthLabel(month)}. «Generar informe» lo crea con los filtros actuales.`));
    return;
  }
  clear(out).append(
    el(
      "ul",
      { class: "runs" },
      page.items.map((r) =>
        el(
          "li",
          {},
          el("span", { class: "run-when" }, fmtDate(r.created_at)),
          el("span", { class: "muted" }, `${TRIGGERS[r.trigger] || r.trigger} · ${describeRun(r)} · ${RUN_STATUS[r.status] || r.status}`),
          r.xlsx_url ? el("a", { href: r.xlsx_url }, "XLSX") : null,
          r.html_url ? el("a", { href: r.html_url, target: "_blank", rel: "noopener" }, "HTML") : null,
          r.error ? el("span", { class: "bad small" }, "No se pudo generar.") : null,
        ),
      ),
    ),
  );
}

async function generate() {
  if (!current) return;
  const button = $("btn-generar");
  button.disabled = true;
  button.textContent = "Generando…";
  try {
    const run = await api("POST", `${REPORTS}/runs`, current.body);
    if (run.status === "failed") clear($("informes")).append(el("div", { class: "alert alert-error" }, "No se pudo generar el informe. Revise el registro del servidor."));
    await loadRuns(current.month);
  } catch (err) {
    clear($("informes")).append(el("div", { class: "alert alert-error" }, errorEs(err)));
    button.textContent = "Generar informe";
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ main
async function query() {
  const filter = readFilter();
  const mine = ++seq;
  clear($("rep-error"));
  if (!/^\d{4}-\d{2}$/.test(filter.month)) {
    $("rep-error").append(el("div", { class: "alert alert-error" }, "Elija el mes del reporte."));
    setState("error", "");
    return;
  }
  current = filter;
  setState("loading", filter.month);
  $("rep-cargando").hidden = false;
  $("btn-consultar").disabled = true;
  try {
    const report = await api("GET", `${REPORTS}/indicators?${filter.query}`);
    if (mine !== seq) return;
    const p = report.meta.period;
    const names = report.meta.campaigns.map((c) => c.campaign).join(", ");
    $("rep-periodo").textContent =
      `${monthLabel(filter.month).replace(/^./, (c) => c.toUpperCase())} · del ${longDate(p.start)} al ${longDate(p.last_day)} (hora de ${p.timezone}) · ` +
      `${names ? `Campañas: ${names}` : "Sin campañas con datos"}`;
    for (const render of [renderKpis, renderContactability, renderAppointments, renderSatisfaction, renderPqrs, renderWhatsApp, renderAbandon, renderCampaigns, renderAgents]) {
      try {
        render(report);
      } catch (err) {
        console.error(render.name, err);
      }
    }
    $("rep-contenido").hidden = false;
    setState("ready", filter.month);
    loadRuns(filter.month);
  } catch (err) {
    if (mine !== seq) return;
    $("rep-contenido").hidden = true;
    $("rep-error").append(el("div", { class: "alert alert-error" }, errorEs(err)));
    setState("error", filter.month);
  } finally {
    if (mine === seq) {
      $("rep-cargando").hidden = true;
      $("btn-consultar").disabled = false;
    }
  }
}

async function init() {
  try {
    options = await api("GET", `${REPORTS}/options`);
  } catch (err) {
    $("rep-error").append(el("div", { class: "alert alert-warn" }, `No se pudieron cargar los filtros: ${errorEs(err)}`));
  }
  fillMonthPicker(box.dataset.defaultMonth);
  fillSelect($("f-campana"), options.campaigns);
  fillSelect($("f-tipo"), options.campaign_types);
  fillSelect($("f-marca"), options.brands);
  fillSelect($("f-sede"), options.branches);
  fillSelect($("f-agente"), options.agents);
  $("form-reporte").addEventListener("submit", (ev) => {
    ev.preventDefault();
    query();
  });
  $("btn-generar").addEventListener("click", generate);
  for (const id of ["btn-xlsx", "btn-html"]) {
    $(id).addEventListener("click", (ev) => {
      if (!$(id).hasAttribute("href")) {
        ev.preventDefault();
        clear($("informes")).append(el("p", { class: "muted small" }, "Primero genere el informe del mes con «Generar informe»."));
      }
    });
  }
  setState("idle", "");
  document.body.dataset.reportOptions = "ready";
  await query();
}

if (box && box.dataset.available === "si") {
  loadClock().then(init); // the report runs' times in the deployment's zone, labelled
} else if (box) {
  setState("unavailable", "");
}

