#!/usr/bin/env python3
"""Makes the upgrade fixtures: a deployment written by one release of Custos, kept in the
repository so that later releases prove they open it in place (DESIGN: "Upgrade tests start
from fixture databases made once by the release before the change and committed").

    tools/upgrade-fixture/make.py BINARY OUT_DIR [POSTGRES_ADMIN_URL]

writes OUT_DIR/sqlite/ (the whole data directory: database, keys, objects) and, when a
PostgreSQL admin URL is given, OUT_DIR/postgres/ (custos.sql, a plain `pg_dump` of the
database, plus the data directory holding keys and objects), each with a manifest.json that
names what the upgrade test reads back: ids, API keys, contents, file digests, the erasure's
certificate and the audit log's size. Only the Python standard library is used, so the
fixture does not depend on Custos code beyond the binary that wrote it.
"""

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ADMIN = "upgrade-fixture-admin-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, args, data):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, CUSTOS_ADMIN_TOKEN=ADMIN)
        self.proc = subprocess.Popen(
            [binary, "--data", data, *args, "serve", "--listen", f"127.0.0.1:{self.port}"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(400):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                return
            except Exception:
                time.sleep(0.05)
        raise SystemExit("custos serve did not come up")

    def call(self, method, path, token, body=None, raw=None, expect=(200, 201)):
        data, headers = None, {"Authorization": f"Bearer {token}"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if raw is not None:
            data = raw
            headers["Content-Type"] = "application/octet-stream"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req) as r:
                status, payload = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        if status not in expect:
            raise SystemExit(f"{method} {path}: {status} {payload[:400]!r}")
        return payload

    def json(self, method, path, token, body=None, **kw):
        return json.loads(self.call(method, path, token, body, **kw))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def populate(server):
    """Writes one org's worth of every kind of data; returns the manifest."""
    org = server.json("POST", "/v1/orgs", ADMIN, {"name": "Fixture Co"})["id"]
    members = f"/v1/orgs/{org}/members"
    owner = server.json(
        "POST", members, ADMIN,
        {"name": "owner", "roles": ["owner", "admin", "member", "auditor", "service"]},
    )
    app = server.json("POST", members, ADMIN, {"name": "app", "roles": ["service"]})
    key = owner["api_key"]
    records = {}
    for subject, text in [("alice-1", "alice's first message"),
                          ("bob-2", "bob asks about invoice 17"),
                          ("bob-2", "bob says thanks")]:
        created = server.json("POST", f"/v1/orgs/{org}/records", key, {
            "category": "messages", "subject": subject, "content": text,
            "metadata": {"channel": "chat"},
        })
        records[created["id"]] = {"subject": subject, "content": text, "category": "messages"}
    interaction = server.json("POST", f"/v1/orgs/{org}/records", key, {
        "category": "interactions", "subject": "alice-1",
        "content": {"question": "where is invoice 17", "answer": "in your inbox"},
    })["id"]
    body = b"fixture file body\n" * 1000
    file = server.json(
        "POST", f"/v1/orgs/{org}/files?category=documents&subject=bob-2&name=report.txt",
        key, raw=body,
    )["id"]
    hold = server.json("POST", f"/v1/orgs/{org}/holds", key, {
        "reason": "litigation 2026-17", "subject": "carol-3",
    })["id"]
    held = server.json("POST", f"/v1/orgs/{org}/records", key, {
        "category": "messages", "subject": "carol-3", "content": "carol's message",
    })["id"]
    access = server.json("POST", f"/v1/orgs/{org}/requests", app["api_key"], {
        "type": "access", "subject": "bob-2",
    })["id"]
    export = server.call("GET", f"/v1/orgs/{org}/requests/{access}/export?format=json",
                         app["api_key"])
    erasure = server.json("POST", f"/v1/orgs/{org}/requests", key, {
        "type": "erasure", "subject": "alice-1",
    })
    certificate = server.json(
        "GET", f"/v1/orgs/{org}/requests/{erasure['id']}/certificate", key)
    checkpoint = server.call("GET", "/v1/audit/checkpoint", ADMIN).decode()
    return {
        "admin_token": ADMIN,
        "org": org,
        "owner": {"id": owner["id"], "api_key": key},
        "app": {"id": app["id"], "api_key": app["api_key"]},
        "records": records,
        "erased_records": [r for r, v in records.items() if v["subject"] == "alice-1"],
        "anonymized_record": interaction,
        "file": {"id": file, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)},
        "hold": hold,
        "held_record": held,
        "access_request": access,
        "export_sha256": hashlib.sha256(export).hexdigest(),
        "erasure_request": erasure["id"],
        "certificate": certificate,
        "checkpoint": checkpoint,
    }


def settle(data):
    """Folds each SQLite write-ahead log into its database, so the fixture is whole files."""
    for root, _, files in os.walk(data):
        for name in files:
            if name.endswith(".db"):
                conn = sqlite3.connect(os.path.join(root, name))
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.close()


def make(binary, out, args, data):
    server = Server(binary, args, data)
    try:
        manifest = populate(server)
    finally:
        server.stop()
    settle(data)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    manifest["written_by"] = version
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    binary, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    sqlite = os.path.join(out, "sqlite")
    shutil.rmtree(sqlite, ignore_errors=True)
    os.makedirs(sqlite)
    make(binary, sqlite, [], os.path.join(sqlite, "data"))
    if len(sys.argv) == 4:
        admin = sys.argv[3]
        name = "custos_upgrade_fixture"
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
        url = admin.rsplit("/", 1)[0] + "/" + name
        pg = os.path.join(out, "postgres")
        shutil.rmtree(pg, ignore_errors=True)
        os.makedirs(pg)
        make(binary, pg, ["--database", url], os.path.join(pg, "data"))
        with open(os.path.join(pg, "custos.sql"), "w") as f:
            subprocess.run(["pg_dump", "--no-owner", "--no-privileges", url], stdout=f, check=True)
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE {name}"], check=True)


if __name__ == "__main__":
    main()
