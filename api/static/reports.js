// Reports page: fetches the JSON of the reports router (when the server has it) and shows it
// as tables. Nested objects become sections; lists of objects become tables.
import { $, api, clear, el, messageEs } from "./common.js";

const box = $("reportes");

function cell(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("es-CO") : value.toLocaleString("es-CO", { maximumFractionDigits: 3 });
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function render(value, title, depth = 0) {
  const heading = title ? el(depth ? "h3" : "h2", {}, title) : null;
  if (Array.isArray(value)) {
    if (!value.length) return el("div", {}, heading, el("p", { class: "muted" }, "Sin datos."));
    if (typeof value[0] !== "object" || value[0] === null) return el("div", {}, heading, el("p", {}, value.map(cell).join(", ")));
    const cols = [...new Set(value.flatMap((row) => Object.keys(row)))];
    return el(
      "div",
      { class: "grid-wrap" },
      heading,
      el("table", { class: "table compact" }, el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c)))), el("tbody", {}, value.map((row) => el("tr", {}, cols.map((c) => el("td", {}, cell(row[c]))))))),
    );
  }
  if (value && typeof value === "object") {
    const scalars = Object.entries(value).filter(([, v]) => v === null || typeof v !== "object");
    const nested = Object.entries(value).filter(([, v]) => v !== null && typeof v === "object");
    return el(
      "div",
      { class: "report-section" },
      heading,
      scalars.length ? el("dl", { class: "facts" }, scalars.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, cell(v))])) : null,
      nested.map(([k, v]) => render(v, k, depth + 1)),
    );
  }
  return el("p", {}, heading, cell(value));
}

if (box && box.dataset.available === "si") {
  const month = $("mes");
  const now = new Date();
  month.value = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
  $("form-reporte").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = clear($("resultado"));
    out.append(el("p", { class: "muted" }, "Consultando…"));
    const path = $("sel-reporte").value;
    const query = month.value ? `?month=${encodeURIComponent(month.value)}` : "";
    try {
      const data = await api("GET", `${path}${query}`);
      clear(out).append(render(data));
    } catch (err) {
      clear(out).append(el("div", { class: "alert alert-error" }, messageEs(err)));
    }
  });
}
