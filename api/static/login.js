// Sign-in page: POST /api/v1/auth/login, then go where the user was going (or their home).
import { $, API, api, messageEs } from "./common.js";

const REASONS = {
  session_expired: "Su sesión expiró por inactividad. Ingrese de nuevo.",
  no_session: "Su sesión terminó (se cerró en otro lugar o cambió su contraseña). Ingrese de nuevo.",
  invalid_session: "Su sesión no es válida. Ingrese de nuevo.",
  account_disabled: "Su cuenta está desactivada. Hable con el administrador.",
  salida: "Cerró sesión correctamente.",
};

const params = new URLSearchParams(location.search);
const reason = params.get("motivo");
if (reason && REASONS[reason]) {
  const box = $("motivo");
  box.textContent = REASONS[reason];
  box.hidden = false;
  box.classList.add(reason === "salida" ? "alert-ok" : "alert-warn");
}

function safeNext(role) {
  const next = params.get("siguiente") || "";
  if (/^\/(agente|supervisor|reportes)$/.test(next)) return next;
  return role === "agent" ? "/agente" : "/supervisor";
}

$("form-ingreso").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = $("error-ingreso");
  error.hidden = true;
  const username = $("usuario").value.trim();
  const password = $("clave").value;
  if (!username || !password) {
    error.textContent = "Escriba su usuario y su contraseña.";
    error.hidden = false;
    return;
  }
  const button = $("btn-ingresar");
  button.disabled = true;
  button.textContent = "Ingresando…";
  try {
    const out = await api("POST", `${API}/auth/login`, { username, password }, { redirectOn401: false });
    location.assign(safeNext(out.user.role));
  } catch (err) {
    error.textContent = messageEs(err);
    error.hidden = false;
    $("clave").value = "";
    $("clave").focus();
  } finally {
    button.disabled = false;
    button.textContent = "Ingresar";
  }
});
