"""The built book, read in a real headless Chromium.

Needs the HTML from ``make book`` (``make test`` builds it first) and Debian's
``chromium`` (``make chromium`` installs it). Playwright drives that browser;
no browser is downloaded. For every page in ``_toc.yml`` the test checks that
it loads, shows no cell error or traceback, that every figure has a non-zero
rendered size, that the math is typeset by the local MathJax, that no request
leaves the machine, and that the navigation lists every chapter; it saves a
full-page screenshot of each page under ``_build/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def toc_files() -> list[str]:
    """Every document in ``_toc.yml`` (root first), without extension."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("chapters", "sections"):
                walk(entry.get(key, []))
            for part in entry.get("parts", []):
                walk(part.get("chapters", []))

    walk(toc.get("chapters", []))
    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return files


PAGES = toc_files()


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make book` first (make test does it)")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `make chromium` (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str):
    """Load ``url``; return the page, the outside requests and the script errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside, errors = [], []
    page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else outside.append(r.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, f"{url}: HTTP {response.status}"
    page.wait_for_load_state("networkidle")
    return page, outside, errors


@pytest.mark.parametrize("doc", PAGES)
def test_page(browser, server, doc: str):
    page, outside, errors = open_page(browser, f"{server}/{doc}.html")
    try:
        # MathJax typesets after load; wait until it says it is done.
        has_math = page.locator(".math").count() > 0
        if has_math:
            page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=20_000)
            page.evaluate("() => MathJax.startup.promise.then(() => true)")
            typeset = page.locator("mjx-container").count()
            assert typeset >= page.locator(".math").count(), f"{doc}: math left untypeset"
            assert page.locator("mjx-merror").count() == 0, f"{doc}: a formula has a TeX error"

        body = page.locator("article.bd-article")
        assert body.count() == 1, f"{doc}: no article on the page"
        text = body.inner_text()
        assert "Traceback (most recent call last)" not in text, f"{doc}: a traceback is shown"
        assert page.locator(".output.traceback, .output.error").count() == 0, (
            f"{doc}: a cell error is shown")
        assert page.locator(".problematic").count() == 0, f"{doc}: a broken reference is shown"

        for img in body.locator("img").all():
            img.scroll_into_view_if_needed()
            box = img.bounding_box()
            natural = img.evaluate("el => el.complete ? el.naturalWidth : 0")
            src = img.get_attribute("src")
            assert natural > 0, f"{doc}: image {src} did not load"
            assert box and box["width"] > 0 and box["height"] > 0, f"{doc}: image {src} is empty"

        nav = page.locator("nav.bd-docs-nav")
        hrefs = [a.get_attribute("href") for a in nav.locator("a").all()]
        for other in PAGES[1:]:
            name = Path(other).name + ".html"
            assert any(h and h.split("#")[0].endswith(name) for h in hrefs) or other == doc, (
                f"{doc}: the navigation does not list {other}")

        assert not errors, f"{doc}: JavaScript errors: {errors}"
        assert not outside, f"{doc}: requests left the machine: {outside[:5]}"

        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{Path(doc).name}.png"), full_page=True)
    finally:
        page.close()


def test_every_chapter_is_in_the_toc():
    chapters = sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb"))
    in_toc = sorted(Path(f).name for f in PAGES if (ROOT / f"{f}.ipynb").exists())
    assert chapters == in_toc
