"""The console in a real browser (headless chromium under Playwright).

    python console.py CONFIG.json

CONFIG names the running Custos (`base`), the org (`org`, `org_name`), its owner's API key
(`api_key`) and TOTP secret (`totp_secret`, base32), the deployment's verifier key
(`verifier_key`), an erasure request whose certificate exists (`erasure`), where screenshots
go (`shots`), axe-core (`axe`) and where to write what happened (`out`, JSON).

1. A wrong API key is refused on the sign-in form; the owner signs in with the API key and
   the current TOTP code.
2. Every page of the org's navigation opens, with its heading.
3. The compliance lead finds the most overdue request (the queue filtered to overdue ones,
   earliest due first), opens it and extends it, in a handful of steps.
4. On the audit page every entry shown verifies in the browser (inclusion proof against the
   checkpoint, signed by the pinned key), the extension among them; the checkpoint saved
   while walking the pages is extended by the latest (consistency proof); a changed event, a
   wrong inclusion or consistency proof and a checkpoint signed by another key are each
   rejected, naming the failed check.
5. The certificate of deletion verifies in the browser; a changed one is rejected.
6. axe-core finds no serious or critical violation on any page; then sign out.
"""

import base64
import hashlib
import hmac
import json
import struct
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from browser import Browser, check, fail

PAGES = [
    ("Overview", "Overview"),
    ("Requests", "Requests"),
    ("Retention", "Retention"),
    ("Holds", "Legal holds"),
    ("Audit", "Audit log"),
    ("Deletion log", "Deletion log"),
    ("Members", "Members"),
    ("Access review", "Access review"),
    ("Support", "Support requests"),
    ("Security events", "Security events"),
    ("Settings", "Settings and channels"),
]


def totp(secret):
    """RFC 6238: the current 6-digit code of a base32 secret (SHA-1, 30-second steps)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = struct.pack(">Q", int(time.time()) // 30)
    digest = hmac.new(key, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def forged_note(note, verifier_key):
    """The same checkpoint body, signed by another Ed25519 key under the pinned key's name
    and id: what a server without the deployment's key could produce."""
    name, key_id, _ = verifier_key.split("+", 2)
    body = note[: note.rfind("\n\n") + 1]
    other = Ed25519PrivateKey.generate()
    signature = bytes.fromhex(key_id) + other.sign(body.encode())
    return body + "\n\u2014 " + name + " " + base64.b64encode(signature).decode() + "\n"


def outcome(page, index):
    out = page.locator(f"#check-{index}")
    out.wait_for(state="attached")
    page.wait_for_function(
        "i => !['', 'Checking…'].includes(document.getElementById('check-' + i).textContent)",
        arg=index,
    )
    return out.text_content()


def main():
    config = json.load(open(sys.argv[1]))
    base, org = config["base"], config["org"]
    browser = Browser(config["shots"], config["axe"])
    context = browser.context()
    page = context.new_page()
    result = {}

    # 1. Sign in: a wrong key is refused with a message; the owner's key and code open it.
    page.goto(f"{base}/console")
    check("/console/login" in page.url, f"/console sends a stranger to sign-in, not {page.url}")
    browser.screenshot(page, "console-sign-in")
    page.get_by_label("Organization").fill(config["org_name"])
    page.get_by_label("API key").fill("cus_not-a-key")
    page.get_by_role("button", name="Sign in", exact=True).click()
    alert = page.get_by_role("alert")
    check("Not signed in" in alert.text_content(), f"a wrong key says so: {alert.text_content()}")
    page.get_by_label("Organization").fill(config["org_name"])
    page.get_by_label("API key").fill(config["api_key"])
    page.get_by_label("Code").fill(totp(config["totp_secret"]))
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/console/{org}")
    cookie = next(c for c in context.cookies() if c["name"] == "custos_session")
    check(cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax",
          f"the session cookie is HttpOnly, Secure, SameSite=Lax: {cookie}")
    print("signed in with the API key and a TOTP code")

    # 2. Every page of the navigation.
    for link, heading in PAGES:
        page.get_by_role("navigation", name="Console").get_by_role("link", name=link, exact=True).click()
        h1 = page.locator("h1").text_content()
        check(h1 == heading, f"{link} opens {heading!r}, not {h1!r}")
        if link == "Audit":
            saved = page.locator("details pre").text_content()
        browser.screenshot(page, "console-" + link.lower().replace(" ", "-"))
    print(f"walked {len(PAGES)} pages")

    # 3. The most overdue request, extended: the queue filtered to overdue requests lists the
    #    earliest due first. The request the test filed is due a minute after filing.
    steps = 0
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Requests", exact=True).click()
    page.get_by_label("Overdue only").select_option("true")
    page.get_by_role("button", name="Filter").click()
    steps += 3
    deadline = time.time() + 120
    while page.locator("td .overdue").count() == 0:
        check(time.time() < deadline, "no request became overdue")
        time.sleep(2)
        page.reload()
    first = page.locator("tbody tr").first
    first.get_by_role("link").click()
    page.get_by_label("Extend by").select_option("14d")
    page.get_by_label("Reason for extending").fill("We need more time to collect records from backups.")
    page.get_by_role("button", name="Extend").click()
    steps += 4
    check(page.get_by_text("Extended ").count() > 0, "the timeline shows the extension")
    result["extended"] = page.url.rsplit("/", 1)[1]
    result["steps"] = steps
    browser.screenshot(page, "console-request-extended")
    print(f"extended the most overdue request in {steps} steps")

    # A bulk erasure from a pasted CSV: every line's outcome, one error on its line.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Requests", exact=True).click()
    page.get_by_label("Subjects to erase (CSV)").fill("subject\nerin\nfrank\n frank\n")
    page.get_by_role("button", name="Erase these subjects").click()
    browser.screenshot(page, "console-bulk-erasure")
    status = page.get_by_role("status").text_content()
    check(status == "2 of 3 subjects erased.", f"the bulk erasure says what it did: {status}")
    rows = page.locator("tbody").text_content()
    check("CSV line 4" in rows, f"the refused line is named by its CSV line: {rows}")
    print("bulk erasure from a pasted CSV: 2 erased, line 4 refused")

    # 4. The audit page: every entry verifies in the browser, the extension among them.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit", exact=True).click()
    buttons = page.locator("button.verify-entry")
    check(buttons.count() > 0, "the audit page lists entries")
    actions = []
    for i in range(buttons.count()):
        b = buttons.nth(i)
        index = b.get_attribute("data-index")
        b.click()
        text = outcome(page, index)
        check(text.startswith("Verified:"), f"entry {index} verifies in the browser: {text}")
        actions.append(json.loads(b.get_attribute("data-action")))
    check("request.extend" in actions, f"the extension is on the audit page: {actions}")
    result["verified"] = len(actions)
    browser.screenshot(page, "console-audit-verified", full_page=False)
    print(f"{len(actions)} audit entries verified in the browser")

    # The checkpoint saved while walking the pages: the log has only grown since; a wrong
    # consistency proof is rejected as such.
    page.get_by_label("Saved checkpoint").fill(saved)
    page.get_by_role("button", name="Check consistency").click()
    page.wait_for_function("() => !['', 'Checking…'].includes(document.getElementById('growth-check').textContent)")
    text = page.locator("#growth-check").text_content()
    check(text.startswith("Verified: the log of"), f"the log only grew: {text}")

    def wrong_consistency(route):
        proof = route.fetch().json()
        check(proof["hashes"], "the consistency proof has hashes to change")
        h = bytearray(base64.b64decode(proof["hashes"][-1]))
        h[0] ^= 1
        proof["hashes"][-1] = base64.b64encode(bytes(h)).decode()
        route.fulfill(json=proof)

    page.route("**/v1/audit/consistency**", wrong_consistency)
    page.get_by_role("button", name="Check consistency").click()
    page.wait_for_function("() => !document.getElementById('growth-check').textContent.startsWith('Verified') && document.getElementById('growth-check').textContent !== 'Checking…'")
    text = page.locator("#growth-check").text_content()
    check(text.startswith("Failed: consistency proof:"), f"a wrong consistency proof is rejected: {text}")
    page.unroute("**/v1/audit/consistency**")
    print("the log only grew since the saved checkpoint; a wrong consistency proof is rejected")
    page.reload()

    # A changed event: the row's bytes say another action than the log holds.
    b = buttons.first
    index = b.get_attribute("data-index")
    page.evaluate(
        """b => {
            const event = JSON.parse(atob(b.dataset.leaf));
            event.action = 'record.read';
            const text = JSON.stringify(event);
            b.dataset.leaf = btoa(text);
            b.dataset.action = '"record.read"';
        }""",
        b.element_handle(),
    )
    b.click()
    text = outcome(page, index)
    check(text.startswith("Failed: event:"), f"a changed event is rejected as such: {text}")
    page.reload()

    # A wrong proof: one hash of the path changed.
    def wrong_proof(route):
        proof = route.fetch().json()
        check(proof["hashes"], "the proof has hashes to change")
        h = bytearray(base64.b64decode(proof["hashes"][0]))
        h[0] ^= 1
        proof["hashes"][0] = base64.b64encode(bytes(h)).decode()
        route.fulfill(json=proof)

    page.route("**/v1/audit/proof/**", wrong_proof)
    b = page.locator("button.verify-entry").first
    index = b.get_attribute("data-index")
    b.click()
    text = outcome(page, index)
    check(text.startswith("Failed: inclusion proof:"), f"a wrong proof is rejected as such: {text}")
    page.unroute("**/v1/audit/proof/**")
    page.reload()

    # A checkpoint signed by another key (under the deployment key's name and id).
    def forged(route):
        cp = route.fetch().json()
        cp["checkpoint"] = forged_note(cp["checkpoint"], config["verifier_key"])
        route.fulfill(json=cp)

    page.route("**/v1/audit/checkpoint", forged)
    b = page.locator("button.verify-entry").first
    index = b.get_attribute("data-index")
    b.click()
    text = outcome(page, index)
    check(text.startswith("Failed: checkpoint signature:"),
          f"a checkpoint signed by another key is rejected as such: {text}")
    browser.screenshot(page, "console-audit-rejected", full_page=False)
    page.unroute("**/v1/audit/checkpoint")
    print("the browser rejects a changed event, a wrong proof and a forged checkpoint")

    # 5. The certificate of deletion, verified in the browser; a changed one is rejected.
    page.goto(f"{base}/console/{org}/requests/{config['erasure']}/certificate")
    page.get_by_role("button", name="Pin this key").click()
    check("Pinned" in page.locator("#key-origin").text_content(), "the key is pinned")
    page.reload()
    check("Pinned" in page.locator("#key-origin").text_content(), "the pin survives a reload")
    page.get_by_role("button", name="Verify certificate").click()
    page.wait_for_function("() => !['', 'Checking…'].includes(document.getElementById('certificate-check').textContent)")
    text = page.locator("#certificate-check").text_content()
    check(text.startswith("Verified: certificate"), f"the certificate verifies: {text}")
    browser.screenshot(page, "console-certificate")
    page.evaluate(
        """() => {
            const pre = document.getElementById('certificate');
            const doc = JSON.parse(pre.textContent);
            doc.tokens_destroyed += 1;
            pre.textContent = JSON.stringify(doc, null, 2);
            document.getElementById('certificate-check').textContent = '';
        }"""
    )
    page.get_by_role("button", name="Verify certificate").click()
    page.wait_for_function("() => !['', 'Checking…'].includes(document.getElementById('certificate-check').textContent)")
    text = page.locator("#certificate-check").text_content()
    check(text.startswith("Failed: signature:"), f"a changed certificate is rejected: {text}")
    print("the certificate verifies in the browser; a changed one does not")

    # 6. Accessibility of every page, then sign out.
    urls = [("sign-in", f"{base}/console/login")]
    urls += [(name, f"{base}/console/{org}{path}") for name, path in [
        ("overview", ""), ("requests", "/requests"), ("request", f"/requests/{result['extended']}"),
        ("retention", "/retention"), ("holds", "/holds"), ("audit", "/audit"),
        ("deletion-log", "/deletion-log"), ("members", "/members"),
        ("access-review", "/access-review"), ("support", "/support-requests"),
        ("security-events", "/security-events"), ("settings", "/settings"),
        ("certificate", f"/requests/{config['erasure']}/certificate"),
    ]]
    browser.accessible(urls, cookies=[cookie])
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/console/login")
    page.goto(f"{base}/console/{org}/requests")
    check("/console/login" in page.url, "signed out: the pages send the browser to sign-in")
    print("signed out")

    json.dump(result, open(config["out"], "w"))
    context.close()
    browser.close()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a Playwright timeout names the step that did not happen
        fail(f"{type(e).__name__}: {e}")
