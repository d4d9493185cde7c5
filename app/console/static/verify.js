// Checks one audit entry against the log's signed checkpoint, in the browser, with Web Crypto:
// the entry's hash (SHA-256 of its canonical JSON), its RFC 9162 inclusion proof (leaf
// SHA-256(0x00 || entry), node SHA-256(0x01 || left || right)) up to the checkpoint's root, and
// the checkpoint's Ed25519 signature (C2SP signed note). Formats: app/audit/verifier.py.
"use strict";

const enc = new TextEncoder();

// Numbers keep the text they were sent as: JSON.parse would turn 1.0 into 1 and round integers
// beyond 2^53, and the hash covers the exact bytes Python wrote.
class RawNumber {
  constructor(raw) { this.raw = raw; }
}

function parseJson(text) {
  let at = 0;
  const token = (pattern) => {
    pattern.lastIndex = at;
    const found = pattern.exec(text);
    if (!found) throw new Error(`not JSON at ${at}`);
    at += found[0].length;
    return found[0];
  };
  const space = () => token(/[ \t\n\r]*/y);
  const string = () => JSON.parse(token(/"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y));
  const expect = (char) => { space(); if (text[at++] !== char) throw new Error(`expected ${char}`); };
  function value() {
    space();
    const c = text[at];
    if (c === "{") {
      // no prototype: a key named __proto__ is a key like any other, as it is in Python
      at++; const object = Object.create(null); space();
      if (text[at] === "}") { at++; return object; }
      for (;;) {
        space(); const key = string(); expect(":"); object[key] = value(); space();
        if (text[at] === ",") { at++; continue; }
        expect("}"); return object;
      }
    }
    if (c === "[") {
      at++; const array = []; space();
      if (text[at] === "]") { at++; return array; }
      for (;;) {
        array.push(value()); space();
        if (text[at] === ",") { at++; continue; }
        expect("]"); return array;
      }
    }
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) {
      return new RawNumber(token(/-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y));
    }
    for (const [word, meaning] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, at)) { at += word.length; return meaning; }
    }
    throw new Error(`not JSON at ${at}`);
  }
  const parsed = value();
  space();
  if (at !== text.length) throw new Error("trailing text after JSON");
  return parsed;
}

const num = (value) => (value instanceof RawNumber ? Number(value.raw) : value);

// Python sorts keys by code point; JavaScript's < compares UTF-16 units, which puts a key
// beyond U+FFFF (an emoji) before one in U+E000-U+FFFF (a full-width sign).
function byCodePoint(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

function canonical(value) {
  // Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
  if (value instanceof RawNumber) return value.raw;
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  const keys = Object.keys(value).sort(byCodePoint);
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
}

const FIELDS = ["seq", "ts", "actor", "roles", "action", "purpose", "subject_id", "resource",
  "outcome", "details", "request_id", "policy_version", "prev_hash"];

async function sha256(...parts) {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) { all.set(p, at); at += p.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", all));
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text) => {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("not hex");
  return new Uint8Array(text.match(/../g)?.map((h) => parseInt(h, 16)) ?? []);
};
const unbase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

async function rootFromProof(leaf, index, size, proof) {
  // RFC 9162, 2.1.3.2
  if (index >= size) return null;
  let fn = index, sn = size - 1, r = leaf;
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r);
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

function parseNote(text) {
  const cut = text.indexOf("\n\n");
  if (cut < 0 || !text.endsWith("\n")) throw new Error("not a signed note");
  const body = text.slice(0, cut + 1);
  const [origin, size, root] = body.split("\n");
  const signatures = text.slice(cut + 2).split("\n").filter(Boolean).map((line) => {
    const parts = line.split(" ");
    if (parts.length !== 3 || parts[0] !== "\u2014") throw new Error("bad signature line");
    return { name: parts[1], blob: unbase64(parts[2]) };
  });
  if (!/^(0|[1-9][0-9]*)$/.test(size)) throw new Error("bad tree size");
  return { origin, size: Number(size), root: unbase64(root), body, signatures };
}

async function importKey(pem) {
  const b64 = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  const der = unbase64(b64);
  const key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, true, ["verify"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", key));
  return { key, raw };
}

async function signedBy(note, { key, raw }) {
  for (const { name, blob } of note.signatures) {
    const keyHash = (await sha256(enc.encode(name + "\n"), Uint8Array.of(1), raw)).slice(0, 4);
    if (blob.length === 68 && same(blob.slice(0, 4), keyHash)) {
      if (await crypto.subtle.verify({ name: "Ed25519" }, key, blob.slice(4),
        enc.encode(note.body))) return name;
    }
  }
  return null;
}

async function check(doc, pinned) {
  const checks = [];
  const entry = doc.entry;
  const data = enc.encode(canonical(Object.fromEntries(FIELDS.map((f) => [f, entry[f]]))));
  const entryOk = hex(await sha256(data)) === entry.hash;
  checks.push(["entry hash", entryOk]);
  const note = parseNote(doc.checkpoint);
  const key = await importKey(pinned || doc.public_key);
  const signer = await signedBy(note, key);
  checks.push([`checkpoint signature (${signer ?? "none valid"})`, signer !== null]);
  checks.push([`tree size ${note.size}`, note.size === num(doc.tree_size)]);
  const leaf = await sha256(Uint8Array.of(0), data);
  const root = await rootFromProof(leaf, num(entry.seq) - 1, note.size, doc.proof.map(unhex));
  checks.push(["inclusion proof to the signed root", root !== null && same(root, note.root)]);
  return checks;
}

async function run() {
  const section = document.getElementById("verification");
  const verdict = document.getElementById("verdict");
  const list = document.getElementById("checks");
  verdict.dataset.state = "working";
  verdict.textContent = verdict.dataset.working;
  list.replaceChildren();
  let checks;
  try {
    const answer = await fetch(section.dataset.proof, { credentials: "same-origin" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    checks = await check(parseJson(await answer.text()),
      document.getElementById("pinned-key").value.trim());
  } catch (error) {
    checks = [[String(error.message || error), false]];
  }
  for (const [what, ok] of checks) {
    const item = document.createElement("li");
    item.textContent = `${ok ? "✓" : "✗"} ${what}`;
    item.dataset.ok = String(ok);
    list.append(item);
  }
  const ok = checks.every(([, passed]) => passed);
  verdict.dataset.state = ok ? "verified" : "failed";
  verdict.textContent = ok ? verdict.dataset.verified : verdict.dataset.failed;
}

document.getElementById("verify").addEventListener("click", run);
run();
