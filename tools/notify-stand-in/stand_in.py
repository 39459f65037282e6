"""Notification receivers for tests, independent of Custos's own code.

smtp:    an aiosmtpd server; each message received is one JSON line
         {"from", "to", "subject", "message_id", "body", "tls"}. With --tls-dir DIR it
         requires STARTTLS, with a certificate for localhost and 127.0.0.1 issued by a CA of
         its own, whose certificate it writes to DIR/ca.pem.
webhook: an HTTP server that checks every delivery with the Standard Webhooks reference
         library; each attempt is one JSON line {"id", "verified", "status", "body"}. With
         --fail-first N it answers 503 to the first N attempts (as a receiver that is down).
"""

import argparse
import email
import email.policy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_lock = threading.Lock()


def _append(path, record):
    with _lock, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _tls_context(tls_dir):
    """A server context with a fresh CA and a certificate it issued for localhost."""
    import datetime
    import ipaddress
    import os
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("stand-in test CA"))
        .issuer_name(name("stand-in test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - day)
        .not_valid_after(now + day)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - day)
        .not_valid_after(now + day)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(os.path.join(tls_dir, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    cert_path = os.path.join(tls_dir, "server.pem")
    key_path = os.path.join(tls_dir, "server.key")
    with open(cert_path, "wb") as f:
        f.write(leaf.public_bytes(pem))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def serve_smtp(port, out, tls_dir=None):
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            body = message.get_body(preferencelist=("plain",))
            _append(
                out,
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "subject": str(message["subject"]),
                    "message_id": str(message["message-id"]),
                    "body": body.get_content() if body else "",
                    "tls": session.ssl is not None,
                },
            )
            return "250 Message accepted for delivery"

    tls = {}
    if tls_dir:
        tls = {"tls_context": _tls_context(tls_dir), "require_starttls": True}
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **tls)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def serve_webhook(port, out, secret, fail_first):
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    hook = Webhook(secret)
    attempts = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                hook.verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
            with _lock:
                attempts["n"] += 1
                n = attempts["n"]
            status = 503 if n <= fail_first else (204 if verified else 400)
            _append(
                out,
                {
                    "id": headers.get("webhook-id"),
                    "verified": verified,
                    "status": status,
                    "body": body.decode("utf-8", "replace"),
                },
            )
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["smtp", "webhook"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--secret")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--tls-dir")
    args = parser.parse_args()
    open(args.out, "a").close()
    if args.kind == "smtp":
        serve_smtp(args.port, args.out, args.tls_dir)
    else:
        if not args.secret:
            parser.error("webhook needs --secret")
        serve_webhook(args.port, args.out, args.secret, args.fail_first)


if __name__ == "__main__":
    main()
