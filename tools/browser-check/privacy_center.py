"""The privacy center in a real browser (headless chromium under Playwright).

    python privacy_center.py CONFIG.json

CONFIG names the running Custos (`base`, an http://127.0.0.1 address), the org (`org`, its
`org_name`), the org application's link key (`key_seed`, hex; its public half registered in
the org's `privacy_center.link_keys`), two free ports (`embed_port`, listed in the org's
`frame_ancestors` as http://localhost:PORT, and `stranger_port`, not listed), the subjects
(`erased`, `exporter`, each with records), where screenshots go (`shots`), axe-core
(`axe`) and where to write what was downloaded (`out`, JSON: `certificate`, `export`).

1. The org's application (another site: localhost, not 127.0.0.1) frames the center with a
   fresh link; the user deletes their data through the confirmation step inside the frame,
   sees it done and downloads the certificate.
2. Another user, on the center itself, files "Request my data" from the keyboard alone and
   downloads the export.
3. A site that is not in `frame_ancestors` cannot frame the center.
4. axe-core finds no serious or critical violation on the page or its confirmation step.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from browser import AppKey, Browser, check, fail


def embedding_site(port, key, base, org, subject_box):
    """An org application's page on http://localhost:PORT/app framing the center with a
    fresh link for the subject in `subject_box[0]`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            link = key.link(base, org, subject_box[0])
            body = (
                "<!doctype html><html lang=en><head><title>Example app</title></head><body>"
                "<h1>Example app settings</h1>"
                f'<iframe id="privacy" title="Privacy center" src="{link}" '
                'width="900" height="700"></iframe></body></html>'
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    config = json.load(open(sys.argv[1]))
    base, org = config["base"], config["org"]
    key = AppKey(config["key_seed"])
    subject = [config["erased"]]
    sites = [
        embedding_site(config["embed_port"], key, base, org, subject),
        embedding_site(config["stranger_port"], key, base, org, subject),
    ]
    b = Browser(config["shots"], config["axe"])
    out = {}
    try:
        # 1. Embedded in the org's application, on another site.
        context = b.context()
        page = context.new_page()
        csp_errors = []
        page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"http://localhost:{config['embed_port']}/app")
        frame = page.frame_locator("iframe#privacy")
        frame.get_by_role("heading", name="Your privacy").wait_for()
        check(
            frame.get_by_text(config["org_name"]).first.is_visible(),
            "the org's name is shown",
        )
        b.screenshot(page, "privacy-center-embedded")
        frame.get_by_role("button", name="Delete my data").click()
        confirm = frame.get_by_role("button", name="Confirm: delete my data")
        confirm.wait_for()
        b.screenshot(page, "privacy-center-confirm")
        confirm.click()
        try:
            frame.get_by_text("Your data was erased.").wait_for()
        except Exception:
            b.screenshot(page, "failure-privacy-center")
            fail("after confirming: " + page.frames[-1].content()[:3000])
        row = frame.get_by_role("row").filter(has_text="Deletion of my data")
        check(row.get_by_text("Done", exact=True).is_visible(), "the erasure shows as done")
        b.screenshot(page, "privacy-center-erased")
        with page.expect_download() as download:
            frame.get_by_role("link", name="Download certificate").click()
        out["certificate"] = f"{config['out_dir']}/certificate.json"
        download.value.save_as(out["certificate"])
        check(not csp_errors, f"the page broke its own CSP: {csp_errors}")
        context.close()
        print("embedded: erased, certificate downloaded")

        # 2. Another user, on the center itself, with the keyboard alone.
        context = b.context()
        page = context.new_page()
        page.goto(key.link(base, org, config["exporter"]))
        page.get_by_role("heading", name="Your privacy").wait_for()
        for _ in range(10):
            page.keyboard.press("Tab")
            focused = page.evaluate("document.activeElement && document.activeElement.textContent")
            if focused == "Request my data":
                break
        else:
            fail("Tab never reached the Request my data button")
        page.keyboard.press("Enter")
        link = page.get_by_role("link", name="Download my data (JSON)")
        link.wait_for()
        b.screenshot(page, "privacy-center-requested")
        with page.expect_download() as download:
            link.click()
        out["export"] = f"{config['out_dir']}/export.json"
        download.value.save_as(out["export"])
        context.close()
        print("direct: access requested, export downloaded")

        # 3. A site the org did not list cannot frame the center.
        subject[0] = config["exporter"]
        context = b.context()
        page = context.new_page()
        page.goto(f"http://localhost:{config['stranger_port']}/app")
        page.wait_for_timeout(1500)
        framed = page.frame_locator("iframe#privacy").get_by_role("heading", name="Your privacy")
        check(framed.count() == 0, "a site outside frame_ancestors framed the privacy center")
        context.close()
        print("stranger: framing refused")

        # 4. Accessibility, on the page and its confirmation step.
        center = f"{base}/privacy/{org}"
        b.accessible(
            [
                ("privacy center", key.link(base, org, config["exporter"])),
                ("erasure confirmation", center + "?confirm=erasure"),
                ("error page", f"{base}/privacy/{org}/requests/none/certificate"),
            ]
        )
    finally:
        b.close()
        for site in sites:
            site.shutdown()
    json.dump(out, open(config["out"], "w"))


if __name__ == "__main__":
    main()
