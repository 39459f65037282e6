"""Notification receivers for tests, independent of Custos's own code.

smtp:    an aiosmtpd server; each message received is one JSON line
         {"from", "to", "subject", "message_id", "body"}.
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


def serve_smtp(port, out):
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
                },
            )
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
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
    args = parser.parse_args()
    open(args.out, "a").close()
    if args.kind == "smtp":
        serve_smtp(args.port, args.out)
    else:
        if not args.secret:
            parser.error("webhook needs --secret")
        serve_webhook(args.port, args.out, args.secret, args.fail_first)


if __name__ == "__main__":
    main()
