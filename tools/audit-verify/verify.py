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

KEY is a verifier key string `<name>+<hex key id>+<base64(0x01 || pubkey)>`, or `@FILE`.
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


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
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
        key_text = read_text(args.key[1:]) if args.key.startswith("@") else args.key
        key = parse_verifier_key(key_text)
        {"note": cmd_note, "export": cmd_export, "inclusion": cmd_inclusion,
         "consistency": cmd_consistency}[args.cmd](args, key)
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
