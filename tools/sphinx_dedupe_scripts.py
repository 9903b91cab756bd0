"""A tiny Sphinx extension: load each script once per page.

sphinx-thebe 0.3.1 (pulled in by Jupyter Book 1) registers its inline
configuration script once per build *phase*, so with Sphinx 7.4 every page
declares ``const THEBE_JS_URL`` twice and the browser reports a JavaScript
error ("Identifier 'THEBE_JS_URL' has already been declared"). This extension
drops repeated entries from each page's script list, keeping the first.
tests/test_browser.py fails on any JavaScript error, so it guards the fix.
"""

from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # an inline script is registered with filename None or "": same thing
        filename = getattr(script, "filename", script) or ""
        attributes = getattr(script, "attributes", {}) or {}
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
