#!/usr/bin/env python3
"""Independent verifier for a Custos audit log.

Written from the specifications only (RFC 6962 / RFC 9162 Merkle hashing and proofs, C2SP
signed-note and tlog-checkpoint), not from Custos's code, so that a bug in Custos cannot hide
itself. Uses Python's hashlib and PyNaCl (libsodium) for Ed25519.

Commands (exit 0 = verified, 1 = a check failed, 2 = bad input):

  verify.py note        --key KEY --note CHECKPOINT
  verify.py export      --key KEY --note CHECKPOINT --export EXPORT.jsonl
  verify.py inclusion   --key KEY --note CHECKPOINT --proof PROOF.json [--export EXPORT.jsonl]
  verify.py consistency --key KEY --old-note OLD --note NEW --proof PROOF.json [--export EXPORT.jsonl]
  verify.py cert        [--key KEY] --cert CERTIFICATE.json [--subject-ref REF]
  verify.py report      --key KEY --report REPORT.json

`report` checks an incident report (format custos-incident-report/v1): the checkpoint is signed
by KEY, each step's leaf is included at its index, and each leaf is the incident's
`incident.create` or `incident.status` event recording that step's status, in log order; each
notice's leaf is included too and is the incident's `incident.notify` event for that org.

KEY is a verifier key string `<name>+<hex key id>+<base64(0x01 || pubkey)>`, or `@FILE`.

`cert` checks a certificate of deletion (format custos-certificate-of-deletion/v1) in the same
order as `custos cert verify` and, when one fails, prints `certificate invalid: <check>: <detail>`
with the same check names: format, signature, checkpoint, inclusion_proof, event, subject.
Without --key the certificate's own issuer.verifier_key is used, which shows consistency only.
"""

import argparse
import base64
import binascii
import hashlib
import json
import struct
import sys

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey


class CheckFailed(Exception):
    """The data is well-formed but does not verify: exit 1."""


class BadInput(Exception):
    """The input is malformed: exit 2."""


# --- RFC 6962 §2.1 hashing ------------------------------------------------------------------

def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(leaf):
    return sha256(b"\x00" + leaf)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def split(n):
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(hashes, lo, hi):
    """MTH(D[lo:hi]) by the recursive definition (on leaf hashes)."""
    n = hi - lo
    if n == 0:
        return sha256(b"")
    if n == 1:
        return hashes[lo]
    k = split(n)
    return node_hash(mth(hashes, lo, lo + k), mth(hashes, lo + k, hi))


def path(m, hashes, lo, hi):
    """PATH(m, D[lo:hi]) by the RFC 6962 §2.1.1 definition."""
    n = hi - lo
    if n <= 1:
        return []
    k = split(n)
    if m < k:
        return path(m, hashes, lo, lo + k) + [mth(hashes, lo + k, hi)]
    return path(m - k, hashes, lo + k, hi) + [mth(hashes, lo, lo + k)]


def subproof(m, hashes, lo, hi, complete):
    """SUBPROOF(m, D[lo:hi], b) by the RFC 6962 §2.1.2 definition."""
    n = hi - lo
    if m == n:
        return [] if complete else [mth(hashes, lo, hi)]
    k = split(n)
    if m <= k:
        return subproof(m, hashes, lo, lo + k, complete) + [mth(hashes, lo + k, hi)]
    return subproof(m - k, hashes, lo + k, hi, False) + [mth(hashes, lo, lo + k)]


# --- RFC 9162 §2.1.3.2 / §2.1.4.2 verification ----------------------------------------------

def verify_inclusion(leaf, index, size, proof, root):
    if index >= size:
        raise CheckFailed(f"index {index} is not below tree size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise CheckFailed("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise CheckFailed("inclusion proof is too short")
    if r != root:
        raise CheckFailed("inclusion proof does not lead to the checkpoint root")


def verify_consistency(first, second, first_hash, second_hash, proof):
    if first > second:
        raise CheckFailed(f"old size {first} is larger than new size {second}")
    if first == second:
        if proof or first_hash != second_hash:
            raise CheckFailed("equal sizes need an empty proof and equal roots")
        return
    if first == 0:
        if proof or first_hash != sha256(b""):
            raise CheckFailed("from the empty tree the proof must be empty")
        return
    if not proof:
        raise CheckFailed("consistency proof is empty")
    proof = list(proof)
    if first & (first - 1) == 0:
        proof.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise CheckFailed("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise CheckFailed("consistency proof is too short")
    if fr != first_hash:
        raise CheckFailed("consistency proof does not reproduce the old root")
    if sr != second_hash:
        raise CheckFailed("consistency proof does not reproduce the new root")


# --- C2SP signed-note and tlog-checkpoint ---------------------------------------------------

def b64decode(s, what):
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise BadInput(f"{what} is not base64: {e}") from None


def parse_verifier_key(text):
    text = text.strip()
    # Name and hex id cannot contain '+', but the base64 key can: split at the first two only.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise BadInput("verifier key must be <name>+<hex id>+<base64 key>")
    name, id_hex, key_b64 = parts
    if not name or any(c.isspace() for c in name):
        raise BadInput("verifier key name is invalid")
    if len(id_hex) != 8:
        raise BadInput("verifier key id must be 8 hex digits")
    try:
        key_id = int(id_hex, 16)
    except ValueError:
        raise BadInput("verifier key id must be 8 hex digits") from None
    key = b64decode(key_b64, "verifier key")
    if len(key) != 33 or key[0] != 0x01:
        raise BadInput("verifier key must be 0x01 followed by a 32-byte Ed25519 key")
    expected = struct.unpack(">I", sha256(name.encode() + b"\n" + key)[:4])[0]
    if expected != key_id:
        raise CheckFailed("verifier key id does not match its name and key")
    return name, key_id, key[1:]


def verify_note(text, key):
    """Returns the note body if a signature by `key` verifies."""
    name, key_id, pubkey = key
    cut = text.rfind("\n\n")
    if cut < 0:
        raise BadInput("note has no blank line before its signatures")
    body, sigs = text[: cut + 1], text[cut + 2:]
    if not sigs.endswith("\n"):
        raise BadInput("note signatures must end with a newline")
    verified = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise BadInput(f"bad signature line {line!r}")
        fields = line[2:].split(" ")
        if len(fields) != 2:
            raise BadInput(f"bad signature line {line!r}")
        sig = b64decode(fields[1], "signature")
        if len(sig) < 5:
            raise BadInput("signature too short")
        if fields[0] != name or struct.unpack(">I", sig[:4])[0] != key_id:
            continue  # another key's signature: ignored
        try:
            VerifyKey(pubkey).verify(body.encode("utf-8"), sig[4:])
        except (BadSignatureError, ValueError):
            raise CheckFailed(f"signature by {name} does not verify") from None
        verified = True
    if not verified:
        raise CheckFailed(f"note has no signature by {name}")
    return body


def parse_checkpoint(body):
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise BadInput("checkpoint needs origin, size and root lines")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not size_s.isdigit() or (len(size_s) > 1 and size_s[0] == "0"):
        raise BadInput(f"checkpoint size {size_s!r} is not a decimal number")
    root = b64decode(root_s, "checkpoint root")
    if len(root) != 32:
        raise BadInput("checkpoint root is not 32 bytes")
    return {"origin": origin, "size": int(size_s), "root": root, "extensions": lines[3:-1]}


# --- commands -------------------------------------------------------------------------------

def read_text(path):
    try:
        with open(path, "r", encoding="utf-8", newline="") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: {e}") from None


def load_checkpoint(path, key):
    cp = parse_checkpoint(verify_note(read_text(path), key))
    print(f"ok: {path}: signature valid; origin {cp['origin']}, size {cp['size']}, "
          f"root {cp['root'].hex()}")
    return cp


def load_export(path):
    """Leaf hashes in index order; the indexes must be exactly 0..n-1."""
    hashes = []
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            index, leaf = obj["index"], obj["leaf"]
        except (ValueError, KeyError, TypeError):
            raise BadInput(f"{path}:{lineno}: not an export line") from None
        if index != len(hashes):
            raise CheckFailed(f"{path}:{lineno}: index {index}, expected {len(hashes)} "
                              f"(first bad index {min(index, len(hashes))})")
        hashes.append(leaf_hash(b64decode(leaf, f"{path}:{lineno} leaf")))
    return hashes


def load_hash_list(obj, field):
    vals = obj.get(field)
    if not isinstance(vals, list):
        raise BadInput(f"proof field {field!r} must be a list")
    out = []
    for v in vals:
        if not isinstance(v, str):
            raise BadInput(f"proof field {field!r} must hold base64 strings")
        h = b64decode(v, field)
        if len(h) != 32:
            raise BadInput(f"proof hash in {field!r} is not 32 bytes")
        out.append(h)
    return out


def load_json(path):
    try:
        return json.loads(read_text(path))
    except ValueError as e:
        raise BadInput(f"{path}: {e}") from None


def uint(obj, field):
    v = obj.get(field)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise BadInput(f"proof field {field!r} must be a non-negative integer")
    return v


def cmd_note(args, key):
    load_checkpoint(args.note, key)


def cmd_export(args, key):
    cp = load_checkpoint(args.note, key)
    hashes = load_export(args.export)
    if len(hashes) < cp["size"]:
        raise CheckFailed(f"export has {len(hashes)} entries, checkpoint signs {cp['size']} "
                          f"(first bad index {len(hashes)})")
    root = mth(hashes, 0, cp["size"])
    if root != cp["root"]:
        raise CheckFailed(f"root of the first {cp['size']} exported entries is {root.hex()}, "
                          f"checkpoint says {cp['root'].hex()}")
    print(f"ok: {args.export}: {len(hashes)} entries; root of the first {cp['size']} "
          f"matches the checkpoint")


def cmd_inclusion(args, key):
    cp = load_checkpoint(args.note, key)
    p = load_json(args.proof)
    if not isinstance(p, dict):
        raise BadInput("inclusion proof must be a JSON object")
    index, size = uint(p, "index"), uint(p, "tree_size")
    leaf = load_hash_list({"leaf_hash": [p.get("leaf_hash")]}, "leaf_hash")[0]
    hashes = load_hash_list(p, "hashes")
    if size != cp["size"]:
        raise CheckFailed(f"proof is for tree size {size}, checkpoint is size {cp['size']}")
    verify_inclusion(leaf, index, size, hashes, cp["root"])
    if args.export:
        leaves = load_export(args.export)
        if index >= len(leaves) or leaves[index] != leaf:
            raise CheckFailed(f"leaf hash differs from exported entry {index}")
        if path(index, leaves, 0, size) != hashes:
            raise CheckFailed("proof differs from the path computed from the export")
    print(f"ok: {args.proof}: entry {index} is in the tree of size {size}")


def cmd_consistency(args, key):
    old = load_checkpoint(args.old_note, key)
    new = load_checkpoint(args.note, key)
    if old["origin"] != new["origin"]:
        raise CheckFailed("the two checkpoints are for different logs")
    p = load_json(args.proof)
    if not isinstance(p, dict):
        raise BadInput("consistency proof must be a JSON object")
    m, n = uint(p, "old_size"), uint(p, "new_size")
    hashes = load_hash_list(p, "hashes")
    if (m, n) != (old["size"], new["size"]):
        raise CheckFailed(f"proof is for sizes {m}->{n}, checkpoints are "
                          f"{old['size']}->{new['size']}")
    verify_consistency(m, n, old["root"], new["root"], hashes)
    if args.export and 0 < m < n:
        leaves = load_export(args.export)
        if subproof(m, leaves, 0, n, True) != hashes:
            raise CheckFailed("proof differs from the one computed from the export")
    print(f"ok: {args.proof}: the tree of size {n} extends the tree of size {m}")


# --- certificates of deletion ---------------------------------------------------------------

CERT_FORMAT = "custos-certificate-of-deletion/v1"
SEAL_FIELDS = ("leaf", "inclusion_proof", "checkpoint", "signature")
MAX_SAFE_INTEGER = 2**53 - 1  # I-JSON: every JSON implementation reads these exactly

# The v1 document's shape: exact keys per object, "s" a string, "i" an integer in 0..2^53-1,
# a one-element list a list of that shape.
_TIERS = {"hot": "i", "archive": "i", "objects": "i"}
CERT_SHAPE = {
    "format": "s", "id": "s", "issued_at": "s", "status": "s",
    "issuer": {"tool": "s", "version": "s", "origin": "s", "verifier_key": "s"},
    "subject": {"org": "s", "subject_ref": "s", "request": "s"},
    "times": {"received": "s", "due": "s", "completed": "s"},
    "sanitization": [{"category": "s", "disposition": "s", "method": "s", "tiers": _TIERS,
                      "held": "i"}],
    "keys_destroyed": ["s"], "tokens_destroyed": "i",
    "held_back": [{"hold": "s", "reason": "s", "records": "i"}],
    "verification": "s",
    "leaf": "s",
    "inclusion_proof": {"index": "i", "tree_size": "i", "leaf_hash": "s", "hashes": ["s"]},
    "checkpoint": "s", "signature": "s",
}
STATUSES = ("completed", "partially_completed")
METHODS = ("cryptographic_erase", "purge", "anonymize", "aggregate")


class CertInvalid(Exception):
    """A certificate check failed: exit 1, naming the check."""

    def __init__(self, check, detail):
        super().__init__(f"{check}: {detail}")
        self.check = check


def jcs(value):
    """RFC 8785 (JCS) bytes of the JSON a certificate holds.

    For strings, integers below 2^53, arrays and objects, sorted keys and no whitespace is JCS:
    integers print alike; json.dumps escapes exactly ", \\ and control characters (\\b \\t
    \\n \\f \\r, else lowercase \\u00xx), as JCS does. JCS sorts keys by UTF-16 code units
    and Python by code points; the two orders differ only above U+FFFF, and every key in a
    certificate is ASCII (the shape check guarantees it), so they agree here.
    """
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise CertInvalid("format", "a string holds a lone surrogate") from None


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise CertInvalid("format", f"duplicate key {k!r}")
        obj[k] = v
    return obj


def _not_integer(text):
    raise CertInvalid("format", f"number {text} is not an integer")


def check_shape(value, shape, where):
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise CertInvalid("format", f"{where} must be an object")
        if set(value) != set(shape):
            extra, missing = sorted(set(value) - set(shape)), sorted(set(shape) - set(value))
            raise CertInvalid("format", f"{where}: unknown keys {extra}, missing keys {missing}")
        for k, sub in shape.items():
            check_shape(value[k], sub, f"{where}.{k}")
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise CertInvalid("format", f"{where} must be a list")
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{where}[{i}]")
    elif shape == "s":
        if not isinstance(value, str):
            raise CertInvalid("format", f"{where} must be a string")
    elif not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SAFE_INTEGER:
        raise CertInvalid("format", f"{where} must be an integer in 0..2^53-1")


def cert_b64(text, what, length=None):
    """Strict standard base64: the one encoding of the bytes, so a signature has one form."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CertInvalid("format", f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise CertInvalid("format", f"{what} is not canonical base64")
    if length is not None and len(raw) != length:
        raise CertInvalid("format", f"{what} must be {length} bytes, got {len(raw)}")
    return raw


def parse_certificate(data):
    """Format: I-JSON (no duplicate keys, integers only), the v1 tag, the v1 shape, base64."""
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_float=_not_integer, parse_constant=_not_integer)
    except (UnicodeDecodeError, ValueError) as e:
        raise CertInvalid("format", f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise CertInvalid("format", "a certificate is a JSON object")
    if doc.get("format") != CERT_FORMAT:
        raise CertInvalid("format", f"format is {doc.get('format')!r}, not {CERT_FORMAT!r}")
    check_shape(doc, CERT_SHAPE, "certificate")
    if doc["status"] not in STATUSES:
        raise CertInvalid("format", f"unknown status {doc['status']!r}")
    for c in doc["sanitization"]:
        if c["method"] not in METHODS:
            raise CertInvalid("format", f"unknown method {c['method']!r}")
    p = doc["inclusion_proof"]
    return doc, {
        "leaf": cert_b64(doc["leaf"], "leaf"),
        "signature": cert_b64(doc["signature"], "signature", 64),
        "leaf_hash": cert_b64(p["leaf_hash"], "inclusion_proof.leaf_hash", 32),
        "hashes": [cert_b64(h, "inclusion_proof.hashes", 32) for h in p["hashes"]],
    }


def cert_own_key(doc):
    try:
        return parse_verifier_key(doc["issuer"]["verifier_key"])
    except (BadInput, CheckFailed) as e:
        raise CertInvalid("signature", f"issuer.verifier_key: {e}") from None


def verify_certificate(data, key, subject_ref=None):
    """Runs every check in order; returns (doc, checkpoint) or raises CertInvalid."""
    doc, raw = parse_certificate(data)
    # signature: Ed25519 over JCS of the document without `signature`.
    own = key is None
    if own:
        key = cert_own_key(doc)
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    try:
        VerifyKey(key[2]).verify(jcs(unsigned), raw["signature"])
    except (BadSignatureError, ValueError):
        raise CertInvalid("signature", f"Ed25519 signature does not verify with key {key[0]}") \
            from None
    if not own and cert_own_key(doc) != key:
        raise CertInvalid("signature",
                          "signed by the supplied key, but issuer.verifier_key names another key")
    # checkpoint: signed by the same key, for the issuer's log.
    try:
        cp = parse_checkpoint(verify_note(doc["checkpoint"], key))
    except (BadInput, CheckFailed) as e:
        raise CertInvalid("checkpoint", str(e)) from None
    if cp["origin"] != doc["issuer"]["origin"]:
        raise CertInvalid("checkpoint", "the checkpoint is for another log origin")
    # inclusion_proof: the leaf, at the checkpoint's size, leads to its root.
    p = doc["inclusion_proof"]
    if leaf_hash(raw["leaf"]) != raw["leaf_hash"]:
        raise CertInvalid("inclusion_proof", "leaf_hash is not SHA-256(0x00 || leaf)")
    if p["tree_size"] != cp["size"]:
        raise CertInvalid("inclusion_proof", f"proof is for tree size {p['tree_size']}, "
                                             f"the checkpoint is size {cp['size']}")
    try:
        verify_inclusion(raw["leaf_hash"], p["index"], p["tree_size"], raw["hashes"], cp["root"])
    except CheckFailed as e:
        raise CertInvalid("inclusion_proof", str(e)) from None
    # event: the leaf is the successful subject.erase that commits to this statement.
    try:
        event = json.loads(raw["leaf"].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CertInvalid("event", "the leaf is not a JSON audit event") from None
    if not isinstance(event, dict):
        raise CertInvalid("event", "the leaf is not a JSON audit event")
    subject = doc["subject"]
    statement = {k: v for k, v in doc.items() if k not in SEAL_FIELDS}
    digest = hashlib.sha256(jcs(statement)).hexdigest()
    checks = [
        ("action", "subject.erase", "the leaf is not a subject.erase event"),
        ("outcome", "success", "the erasure event's outcome is not success"),
        ("org", subject["org"], "the event is for another org"),
        ("target", f"request:{subject['request']}", "the event is for another request"),
    ]
    commits = "the event does not commit to this statement"
    if event.get("v") == 1:
        # Encoding version 1 (certificates issued before typed details): the reason text.
        expected = f"subject_ref={subject['subject_ref']} certificate={doc['id']} statement={digest}"
        checks.append(("reason", expected, commits))
    else:
        checks += [
            ("subject_ref", subject["subject_ref"], commits),
            ("certificate", doc["id"], commits),
            ("statement_sha256", digest, commits),
        ]
    for field, want, what in checks:
        if event.get(field) != want:
            raise CertInvalid("event", what)
    # subject: only when the caller names the subject reference they expect.
    if subject_ref is not None and subject["subject_ref"] != subject_ref:
        raise CertInvalid("subject", "the certificate is for another subject reference")
    return doc, cp


def cmd_cert(args):
    key = None
    if args.key is not None:
        text = read_text(args.key[1:]) if args.key.startswith("@") else args.key
        try:
            key = parse_verifier_key(text)
        except CheckFailed as e:  # a key whose id does not match is a malformed argument here
            raise BadInput(f"--key: {e}") from None
    try:
        with open(args.cert, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BadInput(f"{args.cert}: {e}") from None
    subject_ref = args.subject_ref.strip() if args.subject_ref is not None else None
    doc, cp = verify_certificate(data, key, subject_ref)
    how = "supplied key" if key is not None else "the certificate's own key (self-asserted)"
    print(f"ok: certificate {doc['id']} verified ({how}; audit entry "
          f"{doc['inclusion_proof']['index']} in the checkpoint of size {cp['size']})")



# --- incident reports -----------------------------------------------------------------------

REPORT_FORMAT = "custos-incident-report/v1"
STEP_ACTIONS = {"incident.create", "incident.status"}
NOTICE_ACTION = "incident.notify"


def proved_entry(label, item, cp):
    """Checks one cited entry of a report against the checkpoint; its index and event."""
    if not isinstance(item, dict):
        raise BadInput(f"{label} must be an object")
    leaf = b64decode(item.get("leaf", ""), f"{label} leaf")
    proof = item.get("inclusion_proof")
    if not isinstance(proof, dict):
        raise BadInput(f"{label}: inclusion_proof must be an object")
    index, size = uint(proof, "index"), uint(proof, "tree_size")
    if index != uint(item, "audit_index"):
        raise CheckFailed(f"{label}: proof is for entry {index}, the report names {item['audit_index']}")
    if size != cp["size"]:
        raise CheckFailed(f"{label}: proof is for tree size {size}, checkpoint is size {cp['size']}")
    claimed = load_hash_list({"leaf_hash": [proof.get("leaf_hash")]}, "leaf_hash")[0]
    if leaf_hash(leaf) != claimed:
        raise CheckFailed(f"{label}: leaf bytes do not hash to the proof's leaf hash")
    verify_inclusion(claimed, index, size, load_hash_list(proof, "hashes"), cp["root"])
    try:
        event = json.loads(leaf)
    except ValueError:
        raise CheckFailed(f"{label}: leaf is not JSON")
    return index, event


def verify_report(doc, key):
    """Checks an incident report: the checkpoint is signed by KEY; every step's leaf is in
    the checkpoint's tree at its index, is the incident's create or status event naming that
    step's status, and the steps are in log order and match the timeline; every notice's leaf
    is in the tree too, is the incident's notify event for that org, and the notices match
    the incident's notifications."""
    if not isinstance(doc, dict) or doc.get("format") != REPORT_FORMAT:
        raise BadInput(f"not a {REPORT_FORMAT} document")
    incident = doc.get("incident")
    steps = doc.get("steps")
    notices = doc.get("notices", [])
    if not isinstance(incident, dict) or not isinstance(steps, list) or not steps:
        raise BadInput("a report has an incident and at least one step")
    if not isinstance(notices, list):
        raise BadInput("a report's notices are a list")
    checkpoint = doc.get("checkpoint")
    if not isinstance(checkpoint, str):
        raise BadInput("a report's checkpoint is a signed note (text)")
    cp = parse_checkpoint(verify_note(checkpoint, key))
    target = f"incident:{incident.get('id')}"
    last_index = -1
    for n, step in enumerate(steps):
        index, event = proved_entry(f"step {n}", step, cp)
        if index <= last_index:
            raise CheckFailed(f"step {n}: entry {index} is not after the previous step's")
        last_index = index
        if event.get("action") not in STEP_ACTIONS or event.get("target") != target:
            raise CheckFailed(f"step {n}: entry {index} is not a step of {target}")
        status = step.get("status")
        said = "detected" if event["action"] == "incident.create" else event.get("status")
        if said != status:
            raise CheckFailed(f"step {n}: entry {index} records {said!r}, the report says {status!r}")
    timeline = [s.get("status") for s in incident.get("timeline", [])]
    if timeline != [s["status"] for s in steps]:
        raise CheckFailed("the timeline's statuses differ from the steps proved")
    for n, notice in enumerate(notices):
        index, event = proved_entry(f"notice {n}", notice, cp)
        if event.get("action") != NOTICE_ACTION or event.get("target") != target:
            raise CheckFailed(f"notice {n}: entry {index} is not a notice of {target}")
        if event.get("org") != notice.get("org"):
            raise CheckFailed(f"notice {n}: entry {index} told {event.get('org')!r}, the report says {notice.get('org')!r}")
    told = [t.get("org") for t in incident.get("notifications", [])]
    if told != [t.get("org") for t in notices]:
        raise CheckFailed("the incident's notifications differ from the notices proved")
    return cp, len(steps), len(notices)


def cmd_report(args, key):
    doc = load_json(args.report)
    cp, n, told = verify_report(doc, key)
    print(f"ok: {args.report}: {n} steps and {told} notices, each included in the checkpoint of size {cp['size']}")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cert")
    c.add_argument("--key", help="verifier key string, or @FILE (default: the certificate's own)")
    c.add_argument("--cert", required=True, help="the certificate of deletion (JSON)")
    c.add_argument("--subject-ref", help="the subject reference the certificate must name")
    r = sub.add_parser("report")
    r.add_argument("--key", required=True, help="verifier key string, or @FILE")
    r.add_argument("--report", required=True, help="an incident report (JSON)")
    for name in ("note", "export", "inclusion", "consistency"):
        s = sub.add_parser(name)
        s.add_argument("--key", required=True, help="verifier key string, or @FILE")
        s.add_argument("--note", required=True, help="signed checkpoint (the newer one)")
        if name == "consistency":
            s.add_argument("--old-note", required=True, help="the older signed checkpoint")
        if name in ("inclusion", "consistency"):
            s.add_argument("--proof", required=True)
        if name != "note":
            s.add_argument("--export", required=(name == "export"))
    args = ap.parse_args(argv)
    try:
        if args.cmd == "cert":
            cmd_cert(args)
            return 0
        key_text = read_text(args.key[1:]) if args.key.startswith("@") else args.key
        key = parse_verifier_key(key_text)
        {"note": cmd_note, "export": cmd_export, "inclusion": cmd_inclusion,
         "consistency": cmd_consistency, "report": cmd_report}[args.cmd](args, key)
    except CertInvalid as e:
        print(f"certificate invalid: {e}", file=sys.stderr)
        return 1
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except BadInput as e:
        print(f"bad input: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    sys.exit(main(sys.argv[1:]))
