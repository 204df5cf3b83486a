"""The governance report as PDF: its HTML page printed by headless Chromium (Debian's ``chromium``;
the page has no scripts to run, its charts are inline SVG). Pages to PNG for a reviewer:
``pdftoppm -png -r 80 report.pdf report-page`` (poppler-utils)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


class PdfError(RuntimeError):
    pass


def print_pdf(html: str, out: Path, chromium: str = CHROMIUM, timeout: float = 120) -> None:
    if not Path(chromium).exists():
        raise PdfError(f"{chromium} not found: apt-get install chromium (or write the report as .html)")
    with tempfile.TemporaryDirectory(prefix="safecity-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                               f"--user-data-dir={tmp}/profile", f"--print-to-pdf={out.resolve()}",
                               page.as_uri()], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise PdfError(f"chromium could not print the report (exit {done.returncode}): "
                       f"{(done.stderr.strip().splitlines() or [''])[-1][:300]}")
