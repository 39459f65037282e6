// Custos's in-browser verifier: checks what the console shows without trusting the server
// that served it. Signed checkpoints (C2SP signed-note, tlog-checkpoint), inclusion proofs
// (RFC 9162 §2.1.3.2) and certificates of deletion (custos-certificate-of-deletion/v1) are
// checked here with WebCrypto's Ed25519 and SHA-256 against a verifier key the person pins in
// this browser (or pastes), not against a key the page asserts.
//
// Each failure names the check that failed: key, checkpoint signature, event, inclusion
// proof, format, signature, checkpoint, inclusion_proof (the certificate's check names are
// those of `custos cert verify`).
"use strict";

(() => {
  const PIN = "custos.verifierKey";
  const enc = new TextEncoder();

  class Failed extends Error {
    constructor(check, detail) {
      super(`${check}: ${detail}`);
      this.check = check;
    }
  }

  // --- bytes -------------------------------------------------------------------------------

  function b64(text, check, what, length) {
    let raw;
    try {
      raw = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    } catch (_) {
      throw new Failed(check, `${what} is not base64`);
    }
    if (length !== undefined && raw.length !== length) {
      throw new Failed(check, `${what} must be ${length} bytes, not ${raw.length}`);
    }
    return raw;
  }

  function toB64(bytes) {
    return btoa(String.fromCharCode(...bytes));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function same(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  // RFC 6962 §2.1: leaves and nodes are hashed with distinct one-byte prefixes.
  const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  // --- keys and signed notes -------------------------------------------------------------

  // A verifier key `<name>+<8 hex id>+<base64(0x01 || 32-byte Ed25519 key)>`; its id must be
  // the first four bytes of SHA-256(name || "\n" || 0x01 || key).
  async function parseKey(text) {
    const parts = text.trim().split("+");
    if (parts.length < 3) throw new Failed("key", "a verifier key is <name>+<hex id>+<base64 key>");
    const [name, idHex] = parts;
    const keyB64 = parts.slice(2).join("+");
    if (!name || /\s/.test(name)) throw new Failed("key", "the key's name is not valid");
    if (!/^[0-9a-f]{8}$/i.test(idHex)) throw new Failed("key", "the key id must be 8 hex digits");
    const raw = b64(keyB64, "key", "the key", 33);
    if (raw[0] !== 1) throw new Failed("key", "not an Ed25519 verifier key (type byte is not 0x01)");
    const digest = await sha256(concat(enc.encode(name + "\n"), raw));
    if (hex(digest.slice(0, 4)) !== idHex.toLowerCase()) {
      throw new Failed("key", "the key id does not match its name and key");
    }
    let key;
    try {
      key = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      throw new Failed("key", `this browser cannot use Ed25519 keys (${e.name})`);
    }
    return { name, id: idHex.toLowerCase(), key, text: text.trim() };
  }

  function ed25519(key, signature, message) {
    return crypto.subtle.verify({ name: "Ed25519" }, key.key, signature, message);
  }

  // The checkpoint inside a signed note that `key` signed: origin, size, root.
  async function openCheckpoint(note, key, check) {
    const cut = note.lastIndexOf("\n\n");
    if (cut < 0) throw new Failed(check, "the note has no blank line before its signatures");
    const body = note.slice(0, cut + 1);
    const lines = note.slice(cut + 2).split("\n").filter((l) => l !== "");
    let signed = false;
    for (const line of lines) {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) throw new Failed(check, "a signature line is malformed");
      const sig = b64(m[2], check, "a signature");
      if (m[1] !== key.name || sig.length !== 68 || hex(sig.slice(0, 4)) !== key.id) continue;
      if (!(await ed25519(key, sig.slice(4), enc.encode(body)))) {
        throw new Failed(check, `the signature by ${key.name} does not verify`);
      }
      signed = true;
    }
    if (!signed) throw new Failed(check, `not signed by the pinned key ${key.name}+${key.id}`);
    const [origin, size, root] = body.split("\n");
    if (!/^(0|[1-9][0-9]*)$/.test(size || "")) throw new Failed(check, "the tree size is not a number");
    return { origin, size: Number(size), root: b64(root || "", check, "the root", 32) };
  }

  // RFC 9162 §2.1.3.2: the proof from the leaf at `index` must lead to `root`.
  async function checkInclusion(leafHashBytes, index, size, hashes, root, check) {
    if (!(index < size)) throw new Failed(check, `entry ${index} is not below tree size ${size}`);
    let fn = index;
    let sn = size - 1;
    let r = leafHashBytes;
    for (const p of hashes) {
      if (sn === 0) throw new Failed(check, "the proof is too long");
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Failed(check, "the proof is too short");
    if (!same(r, root)) throw new Failed(check, "the proof does not lead to the checkpoint's root");
  }

  // RFC 9162 §2.1.4.2: the proof shows the tree of `second` entries extends the one of
  // `first`, from both roots.
  async function checkConsistency(first, second, firstRoot, secondRoot, proof, check) {
    if (first > second) throw new Failed(check, `the saved checkpoint (${first}) is larger than the latest (${second})`);
    if (first === second) {
      if (proof.length !== 0 || !same(firstRoot, secondRoot)) throw new Failed(check, "same size, different roots");
      return;
    }
    if (first === 0) return;
    if (proof.length === 0) throw new Failed(check, "the proof is empty");
    const path = (first & (first - 1)) === 0 ? [firstRoot, ...proof] : [...proof];
    let fn = first - 1;
    let sn = second - 1;
    while (fn % 2 === 1) {
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) throw new Failed(check, "the proof is too long");
      if (fn % 2 === 1 || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Failed(check, "the proof is too short");
    if (!same(fr, firstRoot)) throw new Failed(check, "the proof does not lead to the saved checkpoint's root");
    if (!same(sr, secondRoot)) throw new Failed(check, "the proof does not lead to the latest checkpoint's root");
  }

  // RFC 8785 (JCS) for what certificates hold: strings, safe integers, arrays and objects.
  // ECMAScript's JSON.stringify is JCS's definition for strings and integers; keys sort by
  // UTF-16 code units, JavaScript's default order.
  function jcs(v) {
    if (Array.isArray(v)) return `[${v.map(jcs).join(",")}]`;
    if (v !== null && typeof v === "object") {
      return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${jcs(v[k])}`).join(",")}}`;
    }
    return JSON.stringify(v);
  }

  // --- what the pages ask ------------------------------------------------------------------

  async function fetchJson(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } });
    if (!r.ok) throw new Failed("fetch", `${url} answered ${r.status}`);
    return r.json();
  }

  // One audit entry: the checkpoint signed by the pinned key, the leaf shown is the one
  // hashed, it is the event the row shows, and the proof leads from it to the root.
  async function verifyEntry(button, key) {
    const index = Number(button.dataset.index);
    const leaf = b64(button.dataset.leaf || "", "event", "the event's bytes");
    const cp = await fetchJson("/v1/audit/checkpoint");
    const checkpoint = await openCheckpoint(cp.checkpoint, key, "checkpoint signature");
    const proof = await fetchJson(`/v1/audit/proof/${index}?tree_size=${checkpoint.size}`);
    let event;
    try {
      event = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(leaf));
    } catch (_) {
      throw new Failed("event", "the entry is not a JSON audit event");
    }
    // The row's fields (as JSON) must be the entry's own.
    for (const field of ["action", "actor", "target", "outcome"]) {
      const shown = button.dataset[field];
      const signed = jcs(event[field] ?? null);
      if (shown === undefined || shown !== signed) {
        throw new Failed("event", `the row shows ${field} ${shown}, the signed entry says ${signed}`);
      }
    }
    const hashed = await leafHash(leaf);
    if (toB64(hashed) !== proof.leaf_hash) {
      throw new Failed("event", "the entry's bytes are not the ones the log holds (leaf hash differs)");
    }
    if (proof.index !== index || proof.tree_size !== checkpoint.size) {
      throw new Failed("inclusion proof", `the proof is for entry ${proof.index} of ${proof.tree_size}`);
    }
    const hashes = proof.hashes.map((h) => b64(h, "inclusion proof", "a proof hash", 32));
    await checkInclusion(hashed, index, checkpoint.size, hashes, checkpoint.root, "inclusion proof");
    return `entry ${index} is in the signed log of ${checkpoint.size} entries`;
  }

  // A checkpoint saved earlier against the latest: both signed by the pinned key, for the same
  // log, and the latest tree extends the saved one (nothing was rewritten or removed).
  async function verifyGrowth(savedNote, key) {
    const saved = await openCheckpoint(savedNote.replace(/\r\n/g, "\n"), key, "saved checkpoint signature");
    const cp = await fetchJson("/v1/audit/checkpoint");
    const latest = await openCheckpoint(cp.checkpoint, key, "checkpoint signature");
    if (saved.origin !== latest.origin) throw new Failed("consistency proof", "the two checkpoints are of different logs");
    if (saved.size > latest.size) {
      throw new Failed("consistency proof", `the saved checkpoint (${saved.size}) is larger than the latest (${latest.size})`);
    }
    const proof = await fetchJson(`/v1/audit/consistency?from=${saved.size}&to=${latest.size}`);
    const hashes = proof.hashes.map((h) => b64(h, "consistency proof", "a proof hash", 32));
    await checkConsistency(saved.size, latest.size, saved.root, latest.root, hashes, "consistency proof");
    return `the log of ${latest.size} entries extends the saved one of ${saved.size}`;
  }

  const CERT_FORMAT = "custos-certificate-of-deletion/v1";
  const SEAL = ["leaf", "inclusion_proof", "checkpoint", "signature"];

  // A certificate of deletion, in the order `custos cert verify` checks it.
  async function verifyCertificate(text, key) {
    let doc;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new Failed("format", "not JSON");
    }
    if (doc === null || typeof doc !== "object" || doc.format !== CERT_FORMAT) {
      throw new Failed("format", `not a ${CERT_FORMAT} document`);
    }
    for (const f of ["signature", "leaf", "checkpoint", "inclusion_proof", "issuer", "subject"]) {
      if (!(f in doc)) throw new Failed("format", `missing ${f}`);
    }
    const signature = b64(doc.signature, "format", "signature", 64);
    const unsigned = Object.fromEntries(Object.entries(doc).filter(([k]) => k !== "signature"));
    if (!(await ed25519(key, signature, enc.encode(jcs(unsigned))))) {
      throw new Failed("signature", `the Ed25519 signature does not verify with ${key.name}+${key.id}`);
    }
    if (doc.issuer.verifier_key !== key.text) {
      throw new Failed("signature", "signed by the pinned key, but issuer.verifier_key names another key");
    }
    const cp = await openCheckpoint(doc.checkpoint, key, "checkpoint");
    if (cp.origin !== doc.issuer.origin) throw new Failed("checkpoint", "the checkpoint is for another log");
    const leaf = b64(doc.leaf, "format", "leaf");
    const p = doc.inclusion_proof;
    const hashed = await leafHash(leaf);
    if (toB64(hashed) !== p.leaf_hash) {
      throw new Failed("inclusion_proof", "leaf_hash is not SHA-256(0x00 || leaf)");
    }
    if (p.tree_size !== cp.size) {
      throw new Failed("inclusion_proof", `the proof is for size ${p.tree_size}, the checkpoint is ${cp.size}`);
    }
    const hashes = p.hashes.map((h) => b64(h, "format", "inclusion_proof.hashes", 32));
    await checkInclusion(hashed, p.index, p.tree_size, hashes, cp.root, "inclusion_proof");
    let event;
    try {
      event = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(leaf));
    } catch (_) {
      throw new Failed("event", "the leaf is not a JSON audit event");
    }
    const statement = Object.fromEntries(Object.entries(doc).filter(([k]) => !SEAL.includes(k)));
    const digest = hex(await sha256(enc.encode(jcs(statement))));
    const want = [
      ["action", "subject.erase"],
      ["outcome", "success"],
      ["org", doc.subject.org],
      ["target", `request:${doc.subject.request}`],
    ];
    if (event.v === 1) {
      want.push(["reason", `subject_ref=${doc.subject.subject_ref} certificate=${doc.id} statement=${digest}`]);
    } else {
      want.push(["subject_ref", doc.subject.subject_ref], ["certificate", doc.id], ["statement_sha256", digest]);
    }
    for (const [field, value] of want) {
      if (event[field] !== value) throw new Failed("event", `the erasure event's ${field} does not match the certificate`);
    }
    return `certificate ${doc.id} verified: entry ${p.index} of the log of ${cp.size} entries, signed by ${key.name}+${key.id}`;
  }

  // --- the page ----------------------------------------------------------------------------

  function show(output, ok, text) {
    output.textContent = ok ? `Verified: ${text}` : `Failed: ${text}`;
    output.className = `check ${ok ? "verified" : "failed"}`;
  }

  async function pinnedKey() {
    const input = document.getElementById("verifier-key");
    return parseKey(input ? input.value : "");
  }

  function setUp() {
    const input = document.getElementById("verifier-key");
    const origin = document.getElementById("key-origin");
    if (input) {
      const pinned = localStorage.getItem(PIN);
      if (pinned) {
        input.value = pinned;
        if (origin) origin.textContent = "Pinned in this browser.";
      } else if (origin) {
        origin.textContent = "Served by this deployment and not pinned: compare it with the key you were given, then pin it.";
      }
      const pin = document.getElementById("pin-key");
      if (pin) {
        pin.addEventListener("click", async () => {
          try {
            const key = await parseKey(input.value);
            localStorage.setItem(PIN, key.text);
            if (origin) origin.textContent = "Pinned in this browser.";
          } catch (e) {
            if (origin) origin.textContent = `Not pinned: ${e.message}`;
          }
        });
      }
    }
    for (const button of document.querySelectorAll("button.verify-entry")) {
      button.hidden = false;
      button.addEventListener("click", async () => {
        const output = document.getElementById(`check-${button.dataset.index}`);
        output.textContent = "Checking…";
        try {
          show(output, true, await verifyEntry(button, await pinnedKey()));
        } catch (e) {
          show(output, false, e.message);
        }
      });
    }
    const growth = document.getElementById("verify-growth");
    if (growth) {
      growth.hidden = false;
      growth.addEventListener("click", async () => {
        const output = document.getElementById("growth-check");
        output.textContent = "Checking…";
        try {
          const saved = document.getElementById("saved-checkpoint").value;
          show(output, true, await verifyGrowth(saved, await pinnedKey()));
        } catch (e) {
          show(output, false, e.message);
        }
      });
    }
    const certButton = document.getElementById("verify-certificate");
    if (certButton) {
      certButton.hidden = false;
      certButton.addEventListener("click", async () => {
        const output = document.getElementById("certificate-check");
        output.textContent = "Checking…";
        try {
          const text = document.getElementById("certificate").textContent;
          show(output, true, await verifyCertificate(text, await pinnedKey()));
        } catch (e) {
          show(output, false, e.message);
        }
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
