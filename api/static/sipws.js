// SIP over WebSocket (RFC 7118) for the browser phone: Marcador's own small signalling module.
//
// The RFC 3261 subset an agent's phone needs: REGISTER with digest auth (401/407, MD5, qop
// auth), refresh and un-REGISTER; incoming INVITE (auto-answer; re-INVITE for hold), ACK, BYE
// both ways, CANCEL, OPTIONS; a target-refresh re-INVITE after the WebSocket reconnects
// (network blip), and a clean BYE of the stale session call after a page reload (the dialog
// is kept in sessionStorage). Media, DTLS and
// ICE are the browser's own RTCPeerConnection (non-trickle: the answer is sent once ICE
// gathering completes). Pure helpers (md5, parse, digest) are exported for node --test.

const CRLF = "\r\n";
const T1 = 500;
const T2 = 4000;
const COMPACT = {
  v: "via",
  f: "from",
  t: "to",
  i: "call-id",
  m: "contact",
  l: "content-length",
  c: "content-type",
  k: "supported",
  s: "subject",
};
// Headers whose comma-separated values are separate entries (RFC 3261 7.3.1).
const LIST_HEADERS = new Set(["via", "route", "record-route", "contact", "allow", "supported"]);

// ------------------------------------------------------------------------------------ MD5
// RFC 1321, over the UTF-8 bytes of a string; WebCrypto has no MD5 and SIP digest needs it.
const MD5_S = [
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
  14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15,
  21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];
const MD5_K = Array.from({ length: 64 }, (_, i) =>
  Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0,
);

export function md5(text) {
  const data = new TextEncoder().encode(text);
  const bitLen = data.length * 8;
  const padded = new Uint8Array((((data.length + 8) >> 6) + 1) * 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, bitLen >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(bitLen / 2 ** 32), true);
  let a0 = 0x67452301;
  let b0 = 0xefcdab89;
  let c0 = 0x98badcfe;
  let d0 = 0x10325476;
  const m = new Uint32Array(16);
  for (let off = 0; off < padded.length; off += 64) {
    for (let j = 0; j < 16; j++) m[j] = view.getUint32(off + j * 4, true);
    let a = a0;
    let b = b0;
    let c = c0;
    let d = d0;
    for (let i = 0; i < 64; i++) {
      let f;
      let g;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      const sum = (a + f + MD5_K[i] + m[g]) >>> 0;
      a = d;
      d = c;
      c = b;
      b = (b + ((sum << MD5_S[i]) | (sum >>> (32 - MD5_S[i])))) >>> 0;
    }
    a0 = (a0 + a) >>> 0;
    b0 = (b0 + b) >>> 0;
    c0 = (c0 + c) >>> 0;
    d0 = (d0 + d) >>> 0;
  }
  const out = new DataView(new ArrayBuffer(16));
  [a0, b0, c0, d0].forEach((w, i) => out.setUint32(i * 4, w, true));
  return Array.from(new Uint8Array(out.buffer), (x) => x.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------------------ messages

function splitList(value) {
  // Split at commas outside quotes and <...>.
  const parts = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '"' && value[i - 1] !== "\\") quoted = !quoted;
    else if (!quoted && ch === "<") depth++;
    else if (!quoted && ch === ">") depth--;
    else if (!quoted && depth === 0 && ch === ",") {
      parts.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(value.slice(start).trim());
  return parts.filter((p) => p);
}

/** Parse one SIP message (a WebSocket text frame carries exactly one, RFC 7118 5.2). */
export function parseMessage(text) {
  const cut = text.indexOf(CRLF + CRLF);
  const head = cut < 0 ? text : text.slice(0, cut);
  const body = cut < 0 ? "" : text.slice(cut + 4);
  const lines = head.split(CRLF);
  // Unfold continuation lines.
  const unfolded = [];
  for (const line of lines.slice(1)) {
    if (/^[ \t]/.test(line) && unfolded.length) unfolded[unfolded.length - 1] += " " + line.trim();
    else if (line) unfolded.push(line);
  }
  const msg = { headers: new Map(), body };
  const first = lines[0];
  let m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(first);
  if (m) {
    msg.kind = "response";
    msg.status = Number(m[1]);
    msg.reason = m[2];
  } else {
    m = /^([A-Z]+) (\S+) SIP\/2\.0$/.exec(first);
    if (!m) throw new Error(`not a SIP message: ${first}`);
    msg.kind = "request";
    msg.method = m[1];
    msg.uri = m[2];
  }
  for (const line of unfolded) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    let name = line.slice(0, colon).trim().toLowerCase();
    name = COMPACT[name] || name;
    const value = line.slice(colon + 1).trim();
    const values = LIST_HEADERS.has(name) ? splitList(value) : [value];
    if (!msg.headers.has(name)) msg.headers.set(name, []);
    msg.headers.get(name).push(...values);
  }
  return msg;
}

export function header(msg, name) {
  const values = msg.headers.get(name.toLowerCase());
  return values && values.length ? values[0] : "";
}

/** ``"Name" <sip:x@y;p>;tag=abc`` -> {display, uri, params: {tag: "abc"}}. */
export function parseNameAddr(value) {
  let display = "";
  let uri;
  let rest;
  const lt = value.indexOf("<");
  if (lt >= 0) {
    display = value.slice(0, lt).trim().replace(/^"|"$/g, "");
    const gt = value.indexOf(">", lt);
    uri = value.slice(lt + 1, gt);
    rest = value.slice(gt + 1);
  } else {
    const semi = value.indexOf(";");
    uri = semi < 0 ? value.trim() : value.slice(0, semi).trim();
    rest = semi < 0 ? "" : value.slice(semi);
  }
  const params = {};
  for (const p of rest.split(";")) {
    const [k, v] = p.split("=");
    if (k && k.trim()) params[k.trim().toLowerCase()] = v === undefined ? "" : v.trim();
  }
  return { display, uri, params };
}

/** ``Digest realm="x", nonce="y", qop="auth"`` -> {scheme, realm, nonce, qop, ...}. */
export function parseChallenge(value) {
  const space = value.indexOf(" ");
  const out = { scheme: value.slice(0, space).trim() };
  const re = /([a-zA-Z0-9_-]+)\s*=\s*("([^"]*)"|[^,\s]*)/g;
  let m;
  const rest = value.slice(space + 1);
  while ((m = re.exec(rest))) out[m[1].toLowerCase()] = m[3] !== undefined ? m[3] : m[2];
  return out;
}

/** The Authorization header value (RFC 2617 / RFC 3261 22.4) for one challenge. */
export function digestAuthorization({ method, uri, username, password, challenge, cnonce, nc }) {
  const realm = challenge.realm || "";
  const ha1 = md5(`${username}:${realm}:${password}`);
  const ha2 = md5(`${method}:${uri}`);
  const qops = (challenge.qop || "").split(",").map((q) => q.trim());
  const count = (nc || 1).toString(16).padStart(8, "0");
  let response;
  let extra = "";
  if (qops.includes("auth")) {
    response = md5(`${ha1}:${challenge.nonce}:${count}:${cnonce}:auth:${ha2}`);
    extra = `, qop=auth, nc=${count}, cnonce="${cnonce}"`;
  } else {
    response = md5(`${ha1}:${challenge.nonce}:${ha2}`);
  }
  const opaque = challenge.opaque !== undefined ? `, opaque="${challenge.opaque}"` : "";
  return (
    `Digest username="${username}", realm="${realm}", nonce="${challenge.nonce}", ` +
    `uri="${uri}", response="${response}", algorithm=MD5${extra}${opaque}`
  );
}

/** The branch parameter of a message's top Via (its transaction). */
export function viaBranch(msg) {
  return parseNameAddr(header(msg, "via").replace(/^SIP\/2\.0\/\S+\s+/, "x;")).params.branch;
}

export function randomToken(n = 10) {
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => (b % 36).toString(36)).join("");
}

function serialize(firstLine, headers, body = "") {
  const lines = [firstLine];
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  lines.push(`Content-Length: ${new TextEncoder().encode(body).length}`);
  return lines.join(CRLF) + CRLF + CRLF + body;
}

/** A response to ``req`` (Via, From, To, Call-ID, CSeq copied; To tag added if missing). */
export function buildResponse(req, status, reason, { toTag = "", headers = [], body = "" } = {}) {
  const out = [];
  for (const via of req.headers.get("via") || []) out.push(["Via", via]);
  out.push(["From", header(req, "from")]);
  let to = header(req, "to");
  if (toTag && !/;\s*tag=/i.test(to)) to += `;tag=${toTag}`;
  out.push(["To", to]);
  out.push(["Call-ID", header(req, "call-id")]);
  out.push(["CSeq", header(req, "cseq")]);
  if (status >= 200 && status < 300 && req.method === "INVITE") {
    for (const rr of req.headers.get("record-route") || []) out.push(["Record-Route", rr]);
  }
  out.push(...headers);
  return serialize(`SIP/2.0 ${status} ${reason}`, out, body);
}

// --------------------------------------------------------------------------------- the UA

const ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS";
const SESSION_KEY = "marcador.sipws.dialog";

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function waitIceComplete(pc, limitMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, limitMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * One registered extension. Events (CustomEvent, ``detail``):
 *  - ``state``: {state: "connecting"|"registered"|"reconnecting"|"unregistered"|"failed", reason}
 *  - ``call``: {state: "incoming"|"answered"|"confirmed"|"held"|"resumed"|"ended", reason}
 *  - ``track``: {stream} (the remote audio)
 * Options: wsUrl, extension, password, domain (default: the WS host), getStream() -> a
 * MediaStream for the call, autoAnswer (default true), iceGatherMs, storage (sessionStorage).
 */
export class SipPhone extends EventTarget {
  constructor(options) {
    super();
    this.opt = { autoAnswer: true, iceGatherMs: 3000, expires: 300, ...options };
    const url = new URL(this.opt.wsUrl);
    this.domain = this.opt.domain || url.hostname;
    this.host = `${randomToken(8)}.invalid`;
    this.user = this.opt.extension;
    this.contact = `<sip:${this.user}@${this.host};transport=ws>`;
    this.aor = `sip:${this.user}@${this.domain}`;
    this.ws = null;
    this.state = "unregistered";
    this.regCallId = randomToken(16);
    this.regCseq = 0;
    this.pending = new Map(); // branch -> {resolve, timer}
    this.call = null; // the one dialog
    this.wanted = false;
    this.retry = 0;
    this.nc = 0;
    this.storage = this.opt.storage === undefined ? globalThis.sessionStorage : this.opt.storage;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setState(state, reason = "") {
    this.state = state;
    this._emit("state", { state, reason });
  }

  // ---------------------------------------------------------------- transport
  async start() {
    this.wanted = true;
    await this._connect();
  }

  async stop() {
    this.wanted = false;
    if (this.call) await this.hangup();
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === "registered") {
      try {
        await this._register(0);
      } catch {
        // closing anyway
      }
    }
    clearTimeout(this.refreshTimer);
    if (this.ws) this.ws.close();
    this._forget();
    this._setState("unregistered");
  }

  _connect() {
    this._setState(this.retry ? "reconnecting" : "connecting");
    return new Promise((resolve) => {
      const ws = new WebSocket(this.opt.wsUrl, "sip");
      this.ws = ws;
      let opened = false;
      ws.onopen = async () => {
        opened = true;
        try {
          await this._register(this.opt.expires);
          this.retry = 0;
          await this._resumeDialog();
        } catch (err) {
          this._setState("failed", String(err.message || err));
        }
        resolve();
      };
      ws.onmessage = (ev) => this._receive(String(ev.data));
      ws.onclose = () => {
        if (this.ws !== ws) return;
        clearTimeout(this.refreshTimer);
        if (!opened) resolve();
        if (this.wanted) this._reconnectLater();
      };
      ws.onerror = () => {};
    });
  }

  _reconnectLater() {
    this.retry++;
    this._setState("reconnecting");
    const delay = Math.min(8000, 250 * 2 ** Math.min(this.retry, 5));
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (this.wanted) this._connect();
    }, delay);
  }

  /** Close the WebSocket as a network failure would (tests, the "reconectar" button). */
  dropTransport() {
    if (this.ws) this.ws.close();
  }

  _send(text) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new Error("sin conexión");
    this.ws.send(text);
  }

  _via(branch) {
    return `SIP/2.0/WS ${this.host};branch=${branch};rport`;
  }

  /** Send a non-INVITE or INVITE client request; resolve with its final response. */
  _request(method, uri, headers, body = "", { timeoutMs = 32 * T1 } = {}) {
    const branch = `z9hG4bK${randomToken(12)}`;
    const text = serialize(
      `${method} ${uri} SIP/2.0`,
      [["Via", this._via(branch)], ["Max-Forwards", "70"], ...headers],
      body,
    );
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(branch);
        reject(new Error(`${method}: sin respuesta`));
      }, timeoutMs);
      this.pending.set(branch, { resolve, timer, method });
      try {
        this._send(text);
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(branch);
        reject(err);
      }
    });
  }

  // ---------------------------------------------------------------- REGISTER
  async _register(expires) {
    const uri = `sip:${this.domain}`;
    const base = () => [
      ["From", `<${this.aor}>;tag=${this.regTag || (this.regTag = randomToken(8))}`],
      ["To", `<${this.aor}>`],
      ["Call-ID", this.regCallId],
      ["CSeq", `${++this.regCseq} REGISTER`],
      ["Contact", `${this.contact};+sip.ice;expires=${expires}`],
      ["Expires", String(expires)],
      ["Allow", ALLOW],
      ["User-Agent", "Marcador sipws"],
    ];
    let res = await this._request("REGISTER", uri, base());
    for (let round = 0; round < 2 && (res.status === 401 || res.status === 407); round++) {
      res = await this._request("REGISTER", uri, [...base(), this._authorize(res, "REGISTER", uri)]);
    }
    if (res.status === 423 && round423(res)) {
      return this._register(Number(header(res, "min-expires")));
    }
    if (res.status !== 200) {
      throw new Error(`REGISTER ${res.status} ${res.reason}`);
    }
    if (expires === 0) return res;
    let granted = expires;
    for (const c of res.headers.get("contact") || []) {
      const p = parseNameAddr(c);
      if (p.uri.includes(this.host) && p.params.expires) granted = Number(p.params.expires);
    }
    const h = header(res, "expires");
    if (h && !res.headers.get("contact")) granted = Number(h);
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(
      () => this._register(this.opt.expires).catch(() => this.dropTransport()),
      Math.max(5, granted * 0.8) * 1000,
    );
    this._setState("registered");
    return res;
  }

  _authorize(res, method, uri) {
    const proxy = res.status === 407;
    const challenge = parseChallenge(header(res, proxy ? "proxy-authenticate" : "www-authenticate"));
    const value = digestAuthorization({
      method,
      uri,
      username: this.user,
      password: this.opt.password,
      challenge,
      cnonce: randomToken(12),
      nc: ++this.nc,
    });
    return [proxy ? "Proxy-Authorization" : "Authorization", value];
  }

  // ---------------------------------------------------------------- receiving
  _receive(text) {
    if (!text.trim()) return; // keep-alive CRLF
    let msg;
    try {
      msg = parseMessage(text);
    } catch {
      return;
    }
    if (msg.kind === "response") {
      const branch = viaBranch(msg);
      const waiting = this.pending.get(branch);
      if (!waiting) return;
      if (msg.status < 200) return;
      clearTimeout(waiting.timer);
      this.pending.delete(branch);
      waiting.resolve(msg);
      return;
    }
    const handler = {
      INVITE: () => this._onInvite(msg),
      ACK: () => this._onAck(msg),
      BYE: () => this._onBye(msg),
      CANCEL: () => this._onCancel(msg),
      OPTIONS: () =>
        this._send(
          buildResponse(msg, 200, "OK", {
            toTag: randomToken(8),
            headers: [
              ["Allow", ALLOW],
              ["Accept", "application/sdp"],
            ],
          }),
        ),
    }[msg.method];
    if (handler) handler();
    else if (msg.method !== "ACK") this._send(buildResponse(msg, 405, "Method Not Allowed", { toTag: randomToken(8), headers: [["Allow", ALLOW]] }));
  }

  _sameDialog(msg) {
    if (!this.call) return false;
    const to = parseNameAddr(header(msg, "to"));
    return header(msg, "call-id") === this.call.callId && to.params.tag === this.call.localTag;
  }

  async _onInvite(msg) {
    if (parseNameAddr(header(msg, "to")).params.tag) {
      if (this._sameDialog(msg)) return this._onReInvite(msg);
      this._send(buildResponse(msg, 481, "Call/Transaction Does Not Exist"));
      return;
    }
    if (this.call && this.call.invite && header(msg, "call-id") === this.call.callId) {
      return; // a retransmission of the INVITE being answered
    }
    if (this.call) {
      // A single-line phone the dialer drives: a new call replaces the old one (a supervisor's
      // next listen/whisper/barge may ring before the previous spy call's BYE arrives). The
      // PBX never rings an agent's busy seat (device_state_busy_at = 1).
      const old = this.call;
      this._end(old, "reemplazada por otra llamada");
      if (old.acked || old.state === "confirmed") this._sendBye(old).catch(() => {});
      else if (old.invite) this._send(buildResponse(old.invite, 486, "Busy Here", { toTag: old.localTag }));
    }
    const call = {
      callId: header(msg, "call-id"),
      localTag: randomToken(10),
      remote: header(msg, "from"),
      local: header(msg, "to"),
      remoteTarget: parseNameAddr(header(msg, "contact")).uri,
      routes: [...(msg.headers.get("record-route") || [])],
      cseq: 1,
      invite: msg,
      state: "incoming",
      pc: null,
      from: parseNameAddr(header(msg, "from")),
    };
    this.call = call;
    this._send(buildResponse(msg, 100, "Trying"));
    this._send(buildResponse(msg, 180, "Ringing", { toTag: call.localTag, headers: [["Contact", this.contact]] }));
    this._emit("call", { state: "incoming", from: call.from.display || call.from.uri });
    if (this.opt.autoAnswer) await this.answer();
  }

  async _newPeer(call) {
    const pc = new RTCPeerConnection({
      iceServers: this.opt.iceServers || [],
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
    });
    call.pc = pc;
    pc.ontrack = (ev) => this._emit("track", { stream: ev.streams[0] || new MediaStream([ev.track]) });
    pc.onconnectionstatechange = () => this._emit("media", { state: pc.connectionState });
    const stream = await this.opt.getStream();
    call.stream = stream;
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    return pc;
  }

  /** Answer the ringing call (auto-answer calls this). */
  async answer() {
    const call = this.call;
    if (!call || call.state !== "incoming") return;
    call.state = "answering";
    try {
      const pc = await this._newPeer(call);
      await pc.setRemoteDescription({ type: "offer", sdp: call.invite.body });
      await pc.setLocalDescription(await pc.createAnswer());
      await waitIceComplete(pc, this.opt.iceGatherMs);
      if (this.call !== call) return; // cancelled meanwhile
      const ok = buildResponse(call.invite, 200, "OK", {
        toTag: call.localTag,
        headers: [
          ["Contact", this.contact],
          ["Allow", ALLOW],
          ["Content-Type", "application/sdp"],
        ],
        body: pc.localDescription.sdp,
      });
      call.state = "answered";
      this._saveDialog();
      this._emit("call", { state: "answered" });
      this._retransmit2xx(call, ok);
    } catch (err) {
      if (this.call === call) {
        this._send(buildResponse(call.invite, 488, "Not Acceptable Here", { toTag: call.localTag }));
        this._end(call, `error: ${err.message || err}`);
      }
    }
  }

  async _retransmit2xx(call, text) {
    // RFC 3261 13.3.1.4: the 2xx is retransmitted until the ACK arrives (T1 doubling to T2).
    call.acked = false;
    let interval = T1;
    for (let elapsed = 0; elapsed < 64 * T1 && this.call === call && !call.acked; ) {
      try {
        this._send(text);
      } catch {
        return;
      }
      await sleep(interval);
      elapsed += interval;
      interval = Math.min(interval * 2, T2);
    }
    if (this.call === call && !call.acked) {
      this._end(call, "sin ACK");
      this._sendBye(call).catch(() => {});
    }
  }

  _onAck(msg) {
    if (!this._sameDialog(msg)) return;
    const call = this.call;
    if (call.acked) return;
    call.acked = true;
    if (call.state === "answered") {
      call.state = "confirmed";
      this._emit("call", { state: "confirmed" });
    }
  }

  async _onReInvite(msg) {
    const call = this.call;
    call.remoteTarget = parseNameAddr(header(msg, "contact")).uri || call.remoteTarget;
    this._send(buildResponse(msg, 100, "Trying"));
    try {
      let sdp = call.pc.localDescription ? call.pc.localDescription.sdp : "";
      if (msg.body) {
        await call.pc.setRemoteDescription({ type: "offer", sdp: msg.body });
        await call.pc.setLocalDescription(await call.pc.createAnswer());
        await waitIceComplete(call.pc, this.opt.iceGatherMs);
        sdp = call.pc.localDescription.sdp;
        const dir = /a=(sendonly|inactive)/.exec(msg.body);
        this._emit("call", { state: dir ? "held" : "resumed" });
      }
      const ok = buildResponse(msg, 200, "OK", {
        headers: [
          ["Contact", this.contact],
          ["Content-Type", "application/sdp"],
        ],
        body: sdp,
      });
      this._retransmit2xx(call, ok);
    } catch (err) {
      this._send(buildResponse(msg, 488, "Not Acceptable Here"));
    }
  }

  _onBye(msg) {
    if (!this._sameDialog(msg)) {
      this._send(buildResponse(msg, 481, "Call/Transaction Does Not Exist"));
      return;
    }
    this._send(buildResponse(msg, 200, "OK"));
    this._end(this.call, "colgó el PBX");
  }

  _onCancel(msg) {
    const call = this.call;
    const matches = call && header(msg, "call-id") === call.callId && !call.acked && call.invite;
    this._send(buildResponse(msg, matches ? 200 : 481, matches ? "OK" : "Call/Transaction Does Not Exist", { toTag: call ? call.localTag : randomToken(8) }));
    if (matches && (call.state === "incoming" || call.state === "answering")) {
      this._send(buildResponse(call.invite, 487, "Request Terminated", { toTag: call.localTag }));
      this._end(call, "cancelada");
    }
  }

  // ---------------------------------------------------------------- dialog requests
  _dialogHeaders(call, method) {
    const headers = [];
    for (const route of call.routes.slice().reverse()) headers.push(["Route", route]);
    headers.push(["From", call.local.includes("tag=") ? call.local : `${call.local};tag=${call.localTag}`]);
    headers.push(["To", call.remote]);
    headers.push(["Call-ID", call.callId]);
    headers.push(["CSeq", `${++call.cseq + 100} ${method}`]);
    return headers;
  }

  async _sendBye(call) {
    return this._request("BYE", call.remoteTarget, this._dialogHeaders(call, "BYE"), "", {
      timeoutMs: 8000,
    });
  }

  /** Hang up: BYE a confirmed call, reject a ringing one. */
  async hangup() {
    const call = this.call;
    if (!call) return;
    if (call.state === "incoming" || call.state === "answering") {
      this._send(buildResponse(call.invite, 486, "Busy Here", { toTag: call.localTag }));
      this._end(call, "rechazada");
      return;
    }
    this._end(call, "colgó el agente");
    try {
      await this._sendBye(call);
    } catch {
      // the PBX ends the call on its own when the media stops
    }
  }

  _end(call, reason) {
    if (this.call !== call) return;
    this.call = null;
    if (call.pc) call.pc.close();
    if (call.stream) for (const t of call.stream.getTracks()) t.stop();
    this._forget();
    this._emit("call", { state: "ended", reason });
  }

  /** Mute/unmute the microphone (the track keeps flowing as silence). */
  setMuted(muted) {
    if (!this.call || !this.call.stream) return;
    for (const t of this.call.stream.getAudioTracks()) t.enabled = !muted;
  }

  /** Swap the microphone of the call in progress (device change). */
  async replaceStream(stream) {
    const call = this.call;
    if (!call || !call.pc) return;
    const track = stream.getAudioTracks()[0];
    for (const sender of call.pc.getSenders()) {
      if (sender.track && sender.track.kind === "audio") await sender.replaceTrack(track);
    }
    if (call.stream) for (const t of call.stream.getTracks()) t.stop();
    call.stream = stream;
  }

  // ---------------------------------------------------------------- recovery
  _saveDialog() {
    const call = this.call;
    if (!this.storage || !call) return;
    const keep = {
      callId: call.callId,
      localTag: call.localTag,
      local: call.local,
      remote: call.remote,
      remoteTarget: call.remoteTarget,
      routes: call.routes,
      cseq: call.cseq + 1000,
      user: this.user,
      host: this.host,
    };
    this.storage.setItem(SESSION_KEY, JSON.stringify(keep));
  }

  _forget() {
    if (this.storage) this.storage.removeItem(SESSION_KEY);
  }

  /** After a reconnect (same page: the peer connection lives on), a re-INVITE from the new
   *  WebSocket refreshes the dialog's target (RFC 3261 12.2.1.2): the offer is the unchanged
   *  session description (same o= version: no change, RFC 3264 8), Asterisk's answer is not
   *  applied and the media never stops. After a page reload (the dialog from sessionStorage,
   *  no peer connection any more) the stale session call is ended cleanly with BYE: Asterisk 22
   *  keeps its ICE/DTLS association on a re-INVITE ("a=connection:existing"), so a new peer
   *  connection cannot take the media over (tried: "Fingerprint ... does not match"). The
   *  dialer then sees the session end and the agent logs in again with one click. */
  async _resumeDialog() {
    if (!this.call && this.storage) {
      let saved = null;
      try {
        saved = JSON.parse(this.storage.getItem(SESSION_KEY) || "null");
      } catch {
        saved = null;
      }
      this._forget();
      if (!saved || saved.user !== this.user) return;
      const stale = { ...saved, state: "confirmed", acked: true, pc: null, invite: null };
      try {
        await this._sendBye(stale);
      } catch {
        // gone already
      }
      this._emit("call", { state: "ended", reason: "sesión anterior cerrada tras recargar" });
      return;
    }
    const call = this.call;
    if (!call || (call.state !== "confirmed" && call.state !== "answered") || !call.pc) return;
    try {
      const offer = call.pc.localDescription.sdp;
      const headers = [
        ...this._dialogHeaders(call, "INVITE"),
        ["Contact", this.contact],
        ["Allow", ALLOW],
        ["Content-Type", "application/sdp"],
      ];
      const cseqLine = headers.find(([n]) => n === "CSeq")[1];
      let res = await this._request("INVITE", call.remoteTarget, headers, offer);
      let lastCseq = cseqLine;
      if (res.status === 401 || res.status === 407) {
        this._ackFor(call, res, lastCseq); // the challenge ends the first INVITE's transaction
        lastCseq = `${++call.cseq + 100} INVITE`;
        headers.splice(headers.findIndex(([n]) => n === "CSeq"), 1, ["CSeq", lastCseq]);
        headers.push(this._authorize(res, "INVITE", call.remoteTarget));
        res = await this._request("INVITE", call.remoteTarget, headers, offer);
      }
      this._ackFor(call, res, lastCseq);
      if (res.status !== 200) throw new Error(`re-INVITE ${res.status}`);
      this._saveDialog();
      this._emit("call", { state: "resumed", recovered: true });
    } catch (err) {
      if (this.call === call) {
        this._end(call, `no se pudo recuperar: ${err.message || err}`);
        this._sendBye(call).catch(() => {});
      }
    }
  }

  /** ACK a final response to our (re-)INVITE. RFC 3261: a non-2xx response (a challenge, an
   * error) is ACKed inside the INVITE's own transaction, so with the INVITE's branch (17.1.1.3);
   * a 2xx in a transaction of its own, with a new branch (13.2.2.4). Both carry the INVITE's
   * Route headers (the dialog's route set) and the response's To. */
  _ackFor(call, res, cseqLine) {
    const seq = cseqLine.split(" ")[0];
    const headers = [];
    for (const route of call.routes.slice().reverse()) headers.push(["Route", route]);
    headers.push(["From", `${call.local.includes("tag=") ? call.local : `${call.local};tag=${call.localTag}`}`]);
    headers.push(["To", header(res, "to") || call.remote]);
    headers.push(["Call-ID", call.callId]);
    headers.push(["CSeq", `${seq} ACK`]);
    const branch = res.status >= 300 ? viaBranch(res) : `z9hG4bK${randomToken(12)}`;
    try {
      this._send(serialize(`ACK ${call.remoteTarget} SIP/2.0`, [["Via", this._via(branch)], ["Max-Forwards", "70"], ...headers]));
    } catch {
      // the transport is gone again; the reconnect retries
    }
  }

  /** RTP statistics of the call: {packetsReceived, packetsSent, audioLevel, bytesReceived}. */
  async stats() {
    const call = this.call;
    const out = { packetsReceived: 0, packetsSent: 0, bytesReceived: 0, audioLevel: 0 };
    if (!call || !call.pc) return out;
    const report = await call.pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.packetsReceived += s.packetsReceived || 0;
        out.bytesReceived += s.bytesReceived || 0;
        out.audioLevel = Math.max(out.audioLevel, s.audioLevel || 0);
      } else if (s.type === "outbound-rtp" && s.kind === "audio") {
        out.packetsSent += s.packetsSent || 0;
      }
    });
    return out;
  }
}

function round423(res) {
  return Number(header(res, "min-expires")) > 0;
}
