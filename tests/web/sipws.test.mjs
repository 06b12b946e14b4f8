// Unit tests of api/static/sipws.js's pure parts (node --test; run by tests/web/test_sipws_node.py,
// which passes the module's path in SIPWS_MODULE).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

const sip = await import(process.env.SIPWS_MODULE);

const nodeMd5 = (s) => createHash("md5").update(s, "utf8").digest("hex");

test("md5 matches node's for RFC 1321 vectors, UTF-8 and block edges", () => {
  assert.equal(sip.md5(""), "d41d8cd98f00b204e9800998ecf8427e");
  assert.equal(sip.md5("abc"), "900150983cd24fb0d6963f7d28e17f72");
  for (const s of ["ñandú:€", "a".repeat(55), "a".repeat(56), "a".repeat(64), "a".repeat(200)]) {
    assert.equal(sip.md5(s), nodeMd5(s), s.slice(0, 10));
  }
});

test("digest response (RFC 2617 qop=auth example)", () => {
  // RFC 2617 section 3.5, with the method and uri of the example.
  const value = sip.digestAuthorization({
    method: "GET",
    uri: "/dir/index.html",
    username: "Mufasa",
    password: "Circle Of Life",
    challenge: sip.parseChallenge(
      'Digest realm="testrealm@host.com", qop="auth,auth-int", ' +
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    ),
    cnonce: "0a4f113b",
    nc: 1,
  });
  assert.match(value, /response="6629fae49393a05397450978507c4ef1"/);
  assert.match(value, /qop=auth, nc=00000001, cnonce="0a4f113b"/);
  assert.match(value, /opaque="5ccc069c403ebaf9f0171e9517f40e41"/);
});

test("digest without qop (RFC 2069 style)", () => {
  const challenge = { scheme: "Digest", realm: "asterisk", nonce: "n1" };
  const value = sip.digestAuthorization({
    method: "REGISTER", uri: "sip:pbx", username: "1101", password: "pw", challenge, cnonce: "c", nc: 1,
  });
  const ha1 = nodeMd5("1101:asterisk:pw");
  const ha2 = nodeMd5("REGISTER:sip:pbx");
  assert.match(value, new RegExp(`response="${nodeMd5(`${ha1}:n1:${ha2}`)}"`));
  assert.doesNotMatch(value, /qop=/);
});

test("parse a request with compact, folded and list headers and a body", () => {
  const text = [
    "INVITE sip:1101@abc.invalid;transport=ws SIP/2.0",
    "Via: SIP/2.0/WS 127.0.0.1:8088;rport;branch=z9hG4bKa, SIP/2.0/WS 10.0.0.1;branch=z9hG4bKb",
    "f: \"Marcador, PBX\" <sip:asterisk@127.0.0.1>;tag=from1",
    "t: <sip:1101@127.0.0.1>",
    "i: call-1",
    "CSeq: 7 INVITE",
    "Record-Route: <sip:p1;lr>,<sip:p2;lr>",
    "Subject: a long",
    " folded value",
    "Content-Type: application/sdp",
    "Content-Length: 4",
    "",
    "v=0\n",
  ].join("\r\n");
  const m = sip.parseMessage(text);
  assert.equal(m.kind, "request");
  assert.equal(m.method, "INVITE");
  assert.equal(m.headers.get("via").length, 2);
  assert.deepEqual(m.headers.get("record-route"), ["<sip:p1;lr>", "<sip:p2;lr>"]);
  assert.equal(sip.header(m, "subject"), "a long folded value");
  assert.equal(sip.header(m, "call-id"), "call-1");
  const from = sip.parseNameAddr(sip.header(m, "from"));
  assert.equal(from.display, "Marcador, PBX");
  assert.equal(from.uri, "sip:asterisk@127.0.0.1");
  assert.equal(from.params.tag, "from1");
  assert.equal(m.body, "v=0\n");
});

test("parse a response and a challenge", () => {
  const m = sip.parseMessage(
    'SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm="asterisk",nonce="1/x",opaque="o",algorithm=MD5,qop="auth"\r\nContent-Length: 0\r\n\r\n',
  );
  assert.equal(m.kind, "response");
  assert.equal(m.status, 401);
  const c = sip.parseChallenge(sip.header(m, "www-authenticate"));
  assert.deepEqual([c.scheme, c.realm, c.nonce, c.opaque, c.algorithm, c.qop], ["Digest", "asterisk", "1/x", "o", "MD5", "auth"]);
});

test("a response copies Via, From, Call-ID, CSeq, adds the To tag and Record-Route on 2xx INVITE", () => {
  const req = sip.parseMessage(
    "INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/WS a;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nRecord-Route: <sip:p;lr>\r\n\r\n",
  );
  const text = sip.buildResponse(req, 200, "OK", { toTag: "t9", body: "v=0\r\n" });
  const res = sip.parseMessage(text);
  assert.equal(res.status, 200);
  assert.equal(sip.header(res, "to"), "<sip:x@b>;tag=t9");
  assert.equal(sip.header(res, "cseq"), "1 INVITE");
  assert.equal(sip.header(res, "record-route"), "<sip:p;lr>");
  assert.equal(sip.header(res, "content-length"), "5");
  const busy = sip.parseMessage(sip.buildResponse(req, 486, "Busy Here", { toTag: "t9" }));
  assert.equal(sip.header(busy, "record-route"), "");
});

// A page that reloaded (or a network blip) refreshes its dialog with a re-INVITE, which
// Asterisk challenges. RFC 3261 17.1.1.3: the 401 is ACKed inside the INVITE's transaction
// (same branch, same CSeq number); 13.2.2.4: the 200 to the authenticated INVITE is ACKed in a
// new transaction (new branch). Both carry the dialog's route set.
async function resumeAgainst(finalStatus) {
  const sent = [];
  const phone = new sip.SipPhone({
    wsUrl: "wss://pbx.example/ws",
    extension: "1101",
    password: "s3cret",
    storage: null,
  });
  phone.call = {
    state: "confirmed",
    pc: { localDescription: { sdp: "v=0\r\n" }, close() {} },
    routes: ["<sip:edge.example;lr>"],
    local: "<sip:1101@pbx.example>",
    localTag: "lt1",
    remote: "<sip:asterisk@pbx.example>;tag=rt1",
    callId: "call-1",
    cseq: 5,
    remoteTarget: "sip:asterisk@127.0.0.1:8088;transport=ws",
  };
  phone._send = (text) => {
    sent.push(sip.parseMessage(text));
    const req = sent.at(-1);
    if (req.method !== "INVITE") return;
    const challenge = [["WWW-Authenticate", 'Digest realm="asterisk",nonce="n1",algorithm=MD5,qop="auth"']];
    const reply = sip.header(req, "authorization")
      ? sip.buildResponse(req, finalStatus, finalStatus === 200 ? "OK" : "Not Acceptable Here", { toTag: "rt1", body: finalStatus === 200 ? "v=0\r\n" : "" })
      : sip.buildResponse(req, 401, "Unauthorized", { toTag: "rt1", headers: challenge });
    queueMicrotask(() => phone._receive(reply));
  };
  phone._sendBye = async () => {};
  await phone._resumeDialog();
  return sent;
}

test("a challenged re-INVITE: the 401 is ACKed in the INVITE's transaction, the 200 in a new one", async () => {
  const sent = await resumeAgainst(200);
  assert.deepEqual(sent.map((m) => m.method), ["INVITE", "ACK", "INVITE", "ACK"]);
  const [invite1, ack1, invite2, ack2] = sent;
  const cseq = (m) => sip.header(m, "cseq").split(" ");
  assert.equal(sip.viaBranch(ack1), sip.viaBranch(invite1));
  assert.deepEqual(cseq(ack1), [cseq(invite1)[0], "ACK"]);
  assert.equal(ack1.uri, invite1.uri);
  assert.notEqual(sip.viaBranch(ack2), sip.viaBranch(invite2));
  assert.notEqual(sip.viaBranch(invite2), sip.viaBranch(invite1));
  assert.deepEqual(cseq(ack2), [cseq(invite2)[0], "ACK"]);
  assert.ok(Number(cseq(invite2)[0]) > Number(cseq(invite1)[0]));
  for (const m of sent) assert.equal(sip.header(m, "route"), "<sip:edge.example;lr>");
  assert.match(sip.header(ack1, "to"), /tag=rt1/);
});

test("a re-INVITE refused after the challenge: that final response is ACKed with its INVITE's branch", async () => {
  const sent = await resumeAgainst(488);
  assert.deepEqual(sent.map((m) => m.method), ["INVITE", "ACK", "INVITE", "ACK"]);
  assert.equal(sip.viaBranch(sent[3]), sip.viaBranch(sent[2]));
  assert.equal(sip.viaBranch(sent[1]), sip.viaBranch(sent[0]));
});
