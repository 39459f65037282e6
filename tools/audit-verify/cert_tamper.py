#!/usr/bin/env python3
"""Writes tampered copies of a certificate fixture for check-cert.sh.

  cert_tamper.py FIXTURE_DIR OUT_DIR

Each case is a file OUT_DIR/<n>.json and a line `<n>.json <check> <what>` in OUT_DIR/cases.txt:
the check both verifiers must name when they reject it. Most changes are made twice: as an
outsider would (the signature then fails) and re-signed with the fixture's public test key, as a
dishonest key holder could (then the audit-log checks must catch it).
"""

import base64
import json
import os
import sys

from nacl.signing import SigningKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify import SEAL_FIELDS, jcs  # noqa: E402  (the same JCS the verifier uses)


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def mutate(path, value):
    """A different but well-formed value for the same field."""
    if isinstance(value, int):
        return value + 1
    if path == "status":
        return "completed" if value != "completed" else "partially_completed"
    if path.endswith(".method"):
        return "anonymize" if value == "purge" else "purge"
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    if digits:  # the last digit: a time's seconds, a UUID's or hex reference's last nibble
        i = digits[-1]
        return value[:i] + str((int(value[i]) + 1) % 10) + value[i + 1:]
    return value + "x"


def statement_paths(value, prefix=""):
    if isinstance(value, dict):
        for k, v in value.items():
            if not prefix and k in SEAL_FIELDS:
                continue
            yield from statement_paths(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from statement_paths(v, f"{prefix}.{i}")
    else:
        yield prefix


def set_path(doc, path, fn):
    parts = path.split(".")
    node = doc
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    last = int(parts[-1]) if isinstance(node, list) else parts[-1]
    node[last] = fn(node[last])


def main(fixture, out):
    cert = load(os.path.join(fixture, "certificate.json"))
    other = load(os.path.join(fixture, "other-certificate.json"))
    with open(os.path.join(fixture, "other-checkpoint.txt"), encoding="utf-8", newline="") as f:
        other_checkpoint = f.read()
    with open(os.path.join(fixture, "test-signing-seed.hex"), encoding="ascii") as f:
        key = SigningKey(bytes.fromhex(f.read().strip()))
    os.makedirs(out, exist_ok=True)
    cases = []

    def resign(doc):
        unsigned = {k: v for k, v in doc.items() if k != "signature"}
        doc["signature"] = base64.b64encode(key.sign(jcs(unsigned)).signature).decode()

    def case(doc, check, what):
        name = f"{len(cases):03d}.json"
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
        cases.append(f"{name} {check} {what}")

    def both(change, what, resigned_check, unsigned_check="signature"):
        doc = json.loads(json.dumps(cert))
        change(doc)
        case(doc, unsigned_check, what)
        resign(doc)
        case(doc, resigned_check, f"{what}, re-signed")

    for path in statement_paths(cert):
        resigned = {"format": "format", "issuer.origin": "checkpoint",
                    "issuer.verifier_key": "signature"}.get(path, "event")
        both(lambda d, p=path: set_path(d, p, lambda v, p=p: mutate(p, v)),
             f"statement field {path} changed", resigned,
             "format" if path == "format" else "signature")

    def flip_hash(d):
        raw = bytearray(base64.b64decode(d["inclusion_proof"]["hashes"][1]))
        raw[0] ^= 1
        d["inclusion_proof"]["hashes"][1] = base64.b64encode(bytes(raw)).decode()
    both(flip_hash, "a proof hash flipped", "inclusion_proof")

    def alter_leaf(d):
        leaf = base64.b64decode(d["leaf"]).replace(b'"org-1"', b'"org-3"', 1)
        d["leaf"] = base64.b64encode(leaf).decode()
    both(alter_leaf, "the leaf altered", "inclusion_proof")

    def other_leaf(d):
        d["leaf"], d["inclusion_proof"] = other["leaf"], other["inclusion_proof"]
    both(other_leaf, "another erasure's leaf and proof", "event")

    def other_cp(d):
        d["checkpoint"] = other_checkpoint
    both(other_cp, "the checkpoint replaced by another deployment's", "checkpoint")

    swapped = json.loads(json.dumps(cert))
    swapped["signature"] = other["signature"]
    case(swapped, "signature", "the signature of another certificate")

    with open(os.path.join(out, "cases.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(cases) + "\n")
    print(f"wrote {len(cases)} tampered certificates to {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
