"""A picture of the console for a reviewer: headless Chromium (Debian's ``chromium``, driven by
Playwright; no browser is downloaded) signs in and saves one page as PNG."""

from __future__ import annotations

import urllib.parse
from pathlib import Path


class ScreenshotError(RuntimeError):
    pass


def sign_in(page, base: str, name: str, password: str) -> None:
    page.goto(base.rstrip("/") + "/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("#signin")
    page.wait_for_selector("#board-rows", timeout=15_000)


def screenshot(base: str, name: str, password: str, which: str, out: Path, chromium: str = "/usr/bin/chromium",
               width: int = 1600, height: int = 1000) -> None:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        raise ScreenshotError("needs Playwright: pip install playwright (no browser download: it drives "
                              "Debian's chromium)") from exc
    if not Path(chromium).exists():
        raise ScreenshotError(f"{chromium} not found: apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            sign_in(page, base, name, password)
            if which.startswith("alert:"):
                page.goto(base.rstrip("/") + "/#/alert/" + urllib.parse.quote(which[6:], safe=""))
                page.wait_for_selector("#alert-timeline", timeout=15_000)
                page.wait_for_timeout(1500)  # the evidence picture, read back from Kafka
            elif which in ("map", "devices"):
                page.goto(base.rstrip("/") + f"/#/{which}")
                page.wait_for_selector(f"#{which}-ready", state="attached", timeout=15_000)
            else:
                page.wait_for_timeout(500)
            page.screenshot(path=str(out), full_page=True)
        except Error as exc:
            raise ScreenshotError(f"the console did not show the page: {exc.message.splitlines()[0]}") from exc
        finally:
            browser.close()
