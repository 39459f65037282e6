"""What the browser tests share: Debian's chromium under Playwright, axe-core, screenshots,
and privacy-center links signed as an org's application signs them.

Not Custos code: the tests check Custos from outside, as a browser and an auditor would.
"""

import base64
import json
import os
import sys
import time
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def fail(message):
    """Ends the test with `message` (exit 1)."""
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class AppKey:
    """An org application's Ed25519 link key."""

    def __init__(self, seed):
        self.key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))

    def jwk(self):
        raw = self.key.public_key().public_bytes_raw()
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "kid": "app"}

    def link(self, base, org, subject, lifetime=300):
        """`/privacy/{org}?token=<JWT>` for `subject`, as RFC 7515 compact EdDSA."""
        header = {"alg": "EdDSA", "typ": "JWT", "kid": "app"}
        claims = {
            "sub": subject,
            "aud": org,
            "exp": int(time.time()) + lifetime,
            "jti": str(uuid.uuid4()),
        }
        signing_input = (
            b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        )
        signature = self.key.sign(signing_input.encode())
        return f"{base}/privacy/{org}?token={signing_input}.{b64url(signature)}"


class Browser:
    """Chromium, with a context per test user; screenshots under `shots`."""

    def __init__(self, shots, axe_path):
        self.shots = shots
        self.axe_path = axe_path
        os.makedirs(shots, exist_ok=True)
        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )

    def context(self, **options):
        context = self.browser.new_context(accept_downloads=True, **options)
        context.set_default_timeout(15_000)
        return context

    def screenshot(self, page, name, full_page=True):
        page.screenshot(path=os.path.join(self.shots, f"{name}.png"), full_page=full_page)

    def accessible(self, pages, cookies=()):
        """Visits each `(name, url)` of `pages` in turn, in one context that lets the test
        inject axe-core past the pages' CSP, and runs axe-core on each; fails on any serious
        or critical violation."""
        context = self.context(bypass_csp=True)
        if cookies:
            context.add_cookies(list(cookies))
        page = context.new_page()
        for name, url in pages:
            page.goto(url)
            page.add_script_tag(path=self.axe_path)
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            bad = [
                f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                for v in result["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            check(not bad, f"axe-core on {name}: " + "; ".join(bad))
            print(f"axe-core: {name}: no serious or critical violations")
        context.close()

    def close(self):
        self.browser.close()
        self._pw.stop()
