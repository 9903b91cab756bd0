"""The built book, read in a real headless Chromium.

Needs the HTML from ``make book`` (``make test`` builds it first) and Debian's
``chromium`` (``make chromium`` installs it). Playwright drives that browser;
no browser is downloaded. For every page in ``_toc.yml`` the test checks that
it loads, shows no cell error or traceback, that every figure has a non-zero
rendered size, that the math is typeset by the local MathJax, that no request
leaves the machine, and that the navigation lists every chapter; it saves a
full-page screenshot of each page under ``_build/screenshots/``.

On every page it also runs axe-core (pinned; ``make axe`` installs it into
``_build/node``): no serious or critical violation may come from the book's
content; the few that only the theme causes are listed in ``THEME_ONLY`` with
the reason. Every image has real alt text (not a file name or hash), and no
code block is wider than the text column, which holds at least 80 characters
of code. Without a browser, the built HTML is checked for figures, listings
and exercises numbered by chapter, listings captioned with their class, and
citation labels that match the text.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / "_build" / "node" / "node_modules" / "axe-core" / "axe.min.js"
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


@contextlib.contextmanager
def serve(directory: Path):
    """An HTTP server on a free local port for ``directory``; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make book` first (make test does it)")
    with serve(HTML) as url:
        yield url


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


LOCAL = ("http://127.0.0.1", "data:", "blob:")

# What the checks need before they look, awaited in the page: the web fonts,
# every image (lazy ones loaded now), and MathJax's first typesetting. This
# replaces Playwright's "networkidle" (500 ms without requests), which its
# docs discourage and which timed out on busy machines with nothing pending.
READY = """() => {
    window.__bookReady = false;
    const loaded = img => img.complete ? null : new Promise(done => {
        img.addEventListener('load', done, {once: true});
        img.addEventListener('error', done, {once: true});
    });
    const images = [...document.images];
    images.forEach(img => { img.loading = 'eager'; });
    Promise.all([document.fonts.ready, ...images.map(loaded)])
        .then(() => window.MathJax && MathJax.startup && MathJax.startup.promise)
        .then(() => { window.__bookReady = true; });
}"""


@dataclass
class Opened:
    """A loaded page, the requests it tried to send off the machine, its script errors."""
    page: object
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pending: dict[str, None] = field(default_factory=dict)


def open_page(browser, url: str) -> Opened:
    """Load ``url`` and wait until its fonts, images and math are ready.

    Requests that would leave the machine are recorded and aborted, so none
    can hang the page. If the page is not ready in time, the failure names
    the requests still in flight.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # the fixture has it

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    # The API page is large and the machine may be busy (pytest -n 2 beside
    # the kernels): 30 s, Playwright's default, has been too short for it.
    page.set_default_timeout(90_000)
    opened = Opened(page)

    def abort_outside(route) -> None:
        opened.outside.append(route.request.url)
        route.abort()

    page.route(lambda url: not url.startswith(LOCAL), abort_outside)
    page.on("pageerror", lambda exc: opened.errors.append(str(exc)))
    page.on("request", lambda r: opened.pending.setdefault(r.url))
    page.on("requestfinished", lambda r: opened.pending.pop(r.url, None))
    page.on("requestfailed", lambda r: opened.pending.pop(r.url, None))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, f"{url}: HTTP {response.status}"
    page.evaluate(READY)
    try:
        page.wait_for_function("window.__bookReady === true")
    except PlaywrightTimeout as exc:
        pytest.fail(f"{url} not ready ({exc}); requests in flight: {list(opened.pending)}")
    return opened


@pytest.fixture(scope="module")
def opened(browser, server):
    """Each page loaded once and shared by the checks below (they only read it)."""
    cache: dict[str, Opened] = {}

    def get(doc: str) -> Opened:
        if doc not in cache:
            cache[doc] = open_page(browser, f"{server}/{doc}.html")
        return cache[doc]

    yield get
    for item in cache.values():
        item.page.close()


def test_outside_requests_are_recorded_and_cannot_hang_the_page(browser, tmp_path):
    # An image from another host, as a theme or a notebook could add: it is
    # aborted (no network here could answer it) and reported, and the page
    # is ready at once instead of waiting for it.
    (tmp_path / "page.html").write_text(
        '<html><body><img alt="a remote image" src="https://example.org/x.png">'
        '<img alt="a local image" src="local.svg"></body></html>')
    (tmp_path / "local.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>')
    with serve(tmp_path) as url:
        loaded = open_page(browser, f"{url}/page.html")
        try:
            assert loaded.outside == ["https://example.org/x.png"]
            assert loaded.pending == {}
            assert loaded.page.evaluate("() => document.images[1].naturalWidth") == 4
        finally:
            loaded.page.close()


@pytest.mark.parametrize("doc", PAGES)
def test_page(opened, doc: str):
    loaded = opened(doc)
    page, outside, errors = loaded.page, loaded.outside, loaded.errors
    # open_page waited for MathJax's first typesetting, when MathJax runs.
    if page.locator(".math").count() > 0:
        assert page.evaluate("() => Boolean(window.MathJax && MathJax.startup)"), (
            f"{doc}: MathJax did not start")
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


def test_every_chapter_is_in_the_toc():
    chapters = sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb"))
    in_toc = sorted(Path(f).name for f in PAGES if (ROOT / f"{f}.ipynb").exists())
    assert chapters == in_toc


# --- accessibility: axe-core -------------------------------------------------------------

# Violations that only sphinx-book-theme / pydata-sphinx-theme cause, on page
# furniture the book does not write: (axe rule, part of the element's CSS
# selector, why the book cannot fix it). Anything else fails the test.
THEME_ONLY = [
    ("label-content-name-mismatch", ".search-button",
     "the theme's search button is labelled 'Search' but also shows the Ctrl+K shortcut"),
    ("label-content-name-mismatch", ".theme-switch-button",
     "the theme's colour-mode button has the label 'Color mode' and an icon per mode"),
]
SEVERE = {"serious", "critical"}


def theme_only(rule: str, target: str) -> bool:
    return any(rule == r and part in target for r, part, _ in THEME_ONLY)


def run_axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), impact: n.impact,
                                      html: n.html.slice(0, 200)}))}));
    }""")


def severe_content_violations(violations: list[dict]) -> list[str]:
    found = []
    for v in violations:
        for node in v["nodes"]:
            impact = node["impact"] or v["impact"]
            if impact in SEVERE and not theme_only(v["id"], node["target"]):
                found.append(f"{impact} {v['id']} ({v['help']}): {node['target']} {node['html']}")
    return found


def test_theme_exceptions_do_not_hide_content_violations():
    # The filter lets a theme-only violation through and nothing else.
    bib = {"id": "aria-required-children", "impact": "critical", "help": "h",
           "nodes": [{"target": ".citation-list", "impact": "critical", "html": "<div>"}]}
    search = {"id": "label-content-name-mismatch", "impact": "serious", "help": "h",
              "nodes": [{"target": ".navbar-item > .search-button", "impact": "serious",
                         "html": "<button>"}]}
    same_rule_in_content = {"id": "label-content-name-mismatch", "impact": "serious",
                            "help": "h", "nodes": [{"target": "article .toggle-button",
                                                    "impact": "serious", "html": "<button>"}]}
    assert severe_content_violations([search]) == []
    assert len(severe_content_violations([bib])) == 1
    assert len(severe_content_violations([same_rule_in_content])) == 1


@pytest.fixture(scope="module")
def axe_ready():
    if not AXE.exists():
        pytest.fail("axe-core is missing: run `make axe` (npm, into _build/node)")


@pytest.mark.parametrize("doc", PAGES)
def test_no_serious_accessibility_violations(opened, axe_ready, doc: str):
    found = severe_content_violations(run_axe(opened(doc).page))
    assert not found, f"{doc}: axe-core finds {len(found)}:\n" + "\n".join(found)


# --- alt text -----------------------------------------------------------------------------

NOT_ALT_TEXT = re.compile(r"[0-9a-f]{12,}|\.(png|jpe?g|svg|gif)\b|/", re.I)


def is_real_alt_text(alt: str | None) -> bool:
    """Words that describe a figure: not missing, empty, a file path or a hash."""
    return bool(alt) and not NOT_ALT_TEXT.search(alt) and len(alt.split()) >= 3


def test_alt_text_check_rejects_paths_and_hashes():
    assert not is_real_alt_text(None) and not is_real_alt_text("")
    assert not is_real_alt_text("../_images/2262772d851dd165568aafc0ec31f1a2.png")
    assert not is_real_alt_text("2262772d851dd165568aafc0ec31f1a2")
    assert not is_real_alt_text("figure")
    assert is_real_alt_text("Training and validation loss per epoch, with and without dropout")


@pytest.mark.parametrize("doc", PAGES)
def test_every_image_has_alt_text(opened, doc: str):
    images = opened(doc).page.evaluate("""() => [...document.querySelectorAll('article img')]
        .map(i => ({src: i.getAttribute('src'), alt: i.getAttribute('alt')}))""")
    bad = [f"{i['src']} (alt={i['alt']!r})" for i in images if not is_real_alt_text(i["alt"])]
    assert not bad, (f"{doc}: images without real alt text (set the cell's metadata "
                     f'"mystnb": {{"image": {{"alt": "..."}}}}): {bad}')


# --- code blocks fit the column ---------------------------------------------------------------

COLUMN_CHARACTERS = 80  # the longest line of code the book shows (package source included)

MEASURE_PRE = """() => [...document.querySelectorAll('article pre')].map(pre => {
    const probe = document.createElement('span');
    probe.textContent = 'x'.repeat(100);
    pre.appendChild(probe);
    const charWidth = probe.getBoundingClientRect().width / 100;
    probe.remove();
    const style = getComputedStyle(pre);
    const inner = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const lines = pre.textContent.split('\\n');
    return {scroll: pre.scrollWidth, client: pre.clientWidth,
            columns: inner / charWidth,
            longest: lines.reduce((a, b) => b.length > a.length ? b : a, '')};
})"""


@pytest.mark.parametrize("doc", PAGES)
def test_code_blocks_fit_the_text_column(opened, doc: str):
    blocks = [b for b in opened(doc).page.evaluate(MEASURE_PRE) if b["client"] > 0]
    narrow = [b for b in blocks if b["columns"] < COLUMN_CHARACTERS]
    assert not narrow, (f"{doc}: code blocks that hold fewer than {COLUMN_CHARACTERS} "
                        f"characters: {[round(b['columns'], 1) for b in narrow]}")
    wide = [f"{b['scroll']} > {b['client']} px: {b['longest']!r}"
            for b in blocks if b["scroll"] > b["client"]]
    assert not wide, f"{doc}: code blocks wider than the column:\n" + "\n".join(wide)


# --- the built HTML, without a browser ---------------------------------------------------------


def built(doc: str) -> str:
    path = HTML / f"{doc}.html"
    if not path.exists():
        pytest.fail("the book is not built: run `make book` first (make test does it)")
    return path.read_text(encoding="utf-8")


def chapter_number(doc: str) -> int | None:
    """The number a chapter's title starts with ("2. Dropout" -> 2)."""
    title = re.search(r"<h1>(.*?)<a class=\"headerlink\"", built(doc), re.S)
    match = title and re.match(r"\s*(\d+)\.\s", re.sub(r"<[^>]+>", "", title[1]))
    return int(match[1]) if match else None


CAPTION_NUMBER = re.compile(r'<span class="caption-number">(Figure|Table|Listing|Exercise) '
                            r"([\d.]+)")


@pytest.mark.parametrize("doc", [p for p in PAGES if re.search(r"/\d\d_", p)])
def test_numbered_by_chapter(doc: str):
    chapter = chapter_number(doc)
    assert chapter is not None, f"{doc}: the title does not start with its number"
    assert chapter == int(Path(doc).name[:2]), f"{doc}: titled {chapter}"
    numbers: dict[str, list[str]] = {}
    for kind, number in CAPTION_NUMBER.findall(built(doc)):
        numbers.setdefault(kind, []).append(number.rstrip("."))
    assert numbers.get("Figure"), f"{doc}: no numbered figure"
    for kind, found in numbers.items():
        expected = [f"{chapter}.{k}" for k in range(1, len(found) + 1)]
        assert found == expected, f"{doc}: {kind} numbers {found}, expected {expected}"


def test_included_methods_are_captioned_with_their_class():
    captions = re.findall(r'<div class="code-block-caption">(.*?)</div>',
                          built("chapters/01_weight_decay"), re.S)
    text = [re.sub(r"<[^>]+>", "", c) for c in captions]
    for name in ("Optimizer.step", "SGD.direction", "Adam.direction"):
        assert any(name in t for t in text), f"no listing captioned {name}: {text}"


CITATION = re.compile(r'<span class="bibtex-citation"[^>]*>(.*?)</span>', re.S)
LINK = re.compile(r'<a class="reference internal" href="#([^"]+)"[^>]*>(.*?)</a>', re.S)
LABEL = re.compile(r'<div class="citation" id="([^"]+)"[^>]*>\s*<span class="label">'
                   r'<span class="fn-bracket">\[</span>(?:<a[^>]*>)?(.*?)(?:</a>)?'
                   r'<span class="fn-bracket">\]</span>', re.S)


def plain(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


@pytest.mark.parametrize("doc", PAGES)
def test_citation_labels_match_the_text(doc: str):
    html = built(doc)
    labels = {cid: plain(label) for cid, label in LABEL.findall(html)}
    for span in CITATION.findall(html):
        for target, text in LINK.findall(span):
            label, text = labels.get(target), plain(text)
            assert label, f"{doc}: the citation {text!r} links to no entry of the page's list"
            assert re.fullmatch(r".+, \d{4}[a-z]?", label), f"{doc}: label {label!r}"
            if re.fullmatch(r"\d{4}[a-z]?", text):  # {cite:t}: "Krogh and Hertz [1992]"
                authors, year = label.rsplit(", ", 1)
                assert year == text and authors in plain(span), (doc, label, plain(span))
            else:  # {cite:p}: "[Ba et al., 2016]"
                assert text == label, f"{doc}: cited as {text!r}, listed as {label!r}"
