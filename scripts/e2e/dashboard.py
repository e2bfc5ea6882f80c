#!/usr/bin/env python3
"""The dashboard as a person uses it, in headless Chromium.

    python3 scripts/e2e/dashboard.py --base URL --key KEY --target URL --out DIR

Run by the server's test `crates/server/tests/browser.rs`, which starts a
server, a worker and a local target site and passes their addresses. Signs
in with the API key, creates a check through the form (after a mistake the
form shows by the field), watches it turn up on the list, creates a failing
check and finds its failed assertion on its page, pauses it, signs out and
opens /status to see only the public check. Every step saves a screenshot
at desktop and phone widths in DIR (STEP-desktop.png, STEP-phone.png).

Drives Debian's chromium (/usr/bin/chromium) through Python's playwright;
scripts/browser-deps.sh installs both when missing.
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def ensure_deps():
    try:
        import playwright.sync_api  # noqa: F401

        if os.path.exists(CHROMIUM):
            return
    except ImportError:
        pass
    subprocess.run(["bash", os.path.join(HERE, "..", "browser-deps.sh")], check=True)


class Flow:
    def __init__(self, page, base, out):
        self.page = page
        self.base = base.rstrip("/")
        self.out = out
        self.steps = []

    def go(self, path):
        self.page.goto(self.base + path)

    def shot(self, name):
        """Saves the page at desktop and phone widths."""
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            self.page.set_viewport_size(size)
            self.page.screenshot(path=os.path.join(self.out, f"{name}-{label}.png"), full_page=True)
        self.page.set_viewport_size(DESKTOP)
        self.steps.append(name)

    def click_and_load(self, selector):
        """Clicks a link or button and waits for the page it leads to."""
        with self.page.expect_navigation():
            self.page.click(selector)

    def text(self):
        return self.page.inner_text("body")

    def must_see(self, *texts):
        body = self.text()
        for t in texts:
            if t not in body:
                raise AssertionError(f"{self.page.url}: expected {t!r} on the page:\n{body}")

    def must_not_see(self, *texts):
        html = self.page.content()
        for t in texts:
            if t in html:
                raise AssertionError(f"{self.page.url}: {t!r} must not be on the page")

    def wait_for(self, what, cond, limit=45):
        """Reloads until cond() holds (the pages do not refresh themselves)."""
        deadline = time.monotonic() + limit
        while True:
            if cond():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.text()}")
            time.sleep(0.3)
            self.page.reload()

    def fill_check(self, name, url, public=False, assertion=None):
        p = self.page
        p.fill("#name", name)
        p.select_option("#type", "http")
        p.fill("#url", url)
        p.fill("#interval_seconds", "2")
        p.fill("#timeout_ms", "2000")
        if public:
            p.check("#public")
        if assertion:
            source, prop, comparison, target = assertion
            p.select_option("select[name=a0_source]", source)
            p.fill("input[name=a0_property]", prop)
            p.select_option("select[name=a0_comparison]", comparison)
            p.fill("input[name=a0_target]", target)


def contrast(fg, bg):
    """The WCAG contrast ratio of two CSS rgb()/rgba() colours."""

    def luminance(css):
        parts = css[css.index("(") + 1 : css.index(")")].split(",")
        chans = []
        for v in (float(x) / 255 for x in parts[:3]):
            chans.append(v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4)
        return 0.2126 * chans[0] + 0.7152 * chans[1] + 0.0722 * chans[2]

    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def check_chart_is_readable(page):
    """The latency chart's legend meets WCAG AA contrast, and on a 390 px
    phone the chart's and the timeline's text is at least 9 px high and
    inside its picture (not clipped)."""
    page.wait_for_selector("svg.chart path.ln", state="attached")
    legend = page.evaluate(
        """() => [...document.querySelectorAll('.legend .k')].map(e => {
            let b = e, bg = 'rgba(0, 0, 0, 0)';
            while (b && (bg = getComputedStyle(b).backgroundColor) === 'rgba(0, 0, 0, 0)') b = b.parentElement;
            return [e.textContent, getComputedStyle(e).color, bg];
        })"""
    )
    if len(legend) < 8:
        raise AssertionError(f"legend keys missing: {legend}")
    for text, fg, bg in legend:
        ratio = contrast(fg, bg)
        if ratio < 4.5:
            raise AssertionError(f"legend {text!r}: contrast {ratio:.2f}:1 ({fg} on {bg})")
    page.set_viewport_size(PHONE)
    try:
        texts = page.evaluate(
            """() => [...document.querySelectorAll('svg.chart text, svg.timeline text')].map(t => {
                const r = t.getBoundingClientRect(), s = t.ownerSVGElement.getBoundingClientRect();
                return [t.textContent, r.height, r.left - s.left, s.right - r.right,
                        r.top - s.top, s.bottom - r.bottom];
            })"""
        )
        if len(texts) < 7:
            raise AssertionError(f"chart text missing: {texts}")
        for text, height, *margins in texts:
            if height < 9:
                raise AssertionError(f"{text!r} is {height:.1f} px high on a phone")
            if min(margins) < -0.5:
                raise AssertionError(f"{text!r} is clipped on a phone: {margins}")
    finally:
        page.set_viewport_size(DESKTOP)


def run(args):
    from playwright.sync_api import sync_playwright

    os.makedirs(args.out, exist_ok=True)
    target = args.target.rstrip("/")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        context = browser.new_context(viewport=DESKTOP)
        # Nothing may be loaded from another host.
        foreign = []
        context.on(
            "request",
            lambda r: foreign.append(r.url) if not r.url.startswith(args.base) else None,
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        f = Flow(page, args.base, args.out)

        # 1. Sign in.
        f.go("/")
        f.must_see("Sign in", "API key")
        f.shot("01-sign-in")
        page.fill("#api_key", args.key)
        f.click_and_load("button[type=submit]")
        f.must_see("Checks", "No checks yet")

        # 2. Create a check through the form: a mistake first, shown by
        # the field, then the fix.
        f.click_and_load("text=New check >> nth=0")
        f.fill_check("Shop API", "ftp://shop.invalid/", public=True)
        f.click_and_load("form.check-form button[type=submit]")
        f.must_see("The check was not saved", "must be an http or https URL")
        if page.get_attribute("#url", "aria-invalid") != "true":
            raise AssertionError("the URL input is not marked invalid")
        f.shot("02-form-error")
        page.fill("#url", f"{target}/ok")
        f.click_and_load("form.check-form button[type=submit]")
        f.must_see("Shop API", f"GET {target}/ok")

        # 3. Watch it turn up on the list, up.
        f.go("/")
        f.wait_for(
            "Shop API to be up on the list",
            lambda: "Shop API" in f.text() and page.locator("td.up").count() >= 1,
        )
        f.must_see("1 check: 1 up")
        f.shot("03-list")

        # 4. A failing check: its failed assertion on its page.
        f.go("/checks/new")
        f.fill_check(
            "Orders API",
            f"{target}/json/degraded",
            assertion=("json_body", "$.status", "equals", "ok"),
        )
        f.click_and_load("form.check-form button[type=submit]")
        f.must_see("Orders API")
        f.wait_for(
            "the failed assertion on the check's page",
            lambda: "Failed assertion" in f.text(),
        )
        f.must_see("Down", "Failed assertion", "degraded")
        page.click("text=Response excerpt >> nth=0")
        f.must_see("HTTP 200")
        f.shot("04-failing-check")
        check_chart_is_readable(page)
        f.go("/")
        f.wait_for("both checks on the list", lambda: "2 checks:" in f.text())
        f.must_see("1 down", "1 up")
        f.shot("05-list-with-failure")

        # 5. Pause it.
        f.click_and_load("text=Orders API")
        f.click_and_load("button:has-text('Pause')")
        f.must_see("Paused", "Resume")
        f.shot("06-paused")

        # 6. Sign out; the public status page shows the public check only.
        f.click_and_load("text=Sign out")
        f.must_see("Sign in")
        f.go("/status")
        f.must_see("Shop API", "All systems operational")
        f.must_not_see("Orders API", target, "/json/degraded", "/ok")
        if page.locator(".service .mark.up").count() != 1:
            raise AssertionError(f"Shop API is not marked up on /status:\n{f.text()}")
        f.shot("07-status")
        f.go("/")
        f.must_see("Sign in")

        browser.close()
        if foreign:
            raise AssertionError(f"requests to other hosts: {foreign}")
    print(f"dashboard e2e: {len(f.steps)} steps passed, screenshots in {args.out}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    ensure_deps()
    try:
        run(args)
    except AssertionError as e:
        sys.exit(f"dashboard e2e failed: {e}")


if __name__ == "__main__":
    main()
