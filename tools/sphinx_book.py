"""A local Sphinx extension: the book's numbering, its PDF and its accessibility fixes.

Listed in ``_config.yml`` (``sphinx: local_extensions``). Each part is guarded
by a test (``tests/test_browser.py`` for the HTML, ``tests/test_pdf.py`` for the
PDF, ``tests/test_book_tools.py`` for the functions themselves).

Numbering by chapter
    The chapter titles carry their own numbers ("0. Overfitting", "1. Weight
    decay", ...), starting at 0, which Sphinx's ``numbered`` toctree cannot
    do (it always counts from 1). So the toctree stays unnumbered and, after
    Sphinx has numbered figures, tables, code listings and exercises through
    the whole book, :func:`number_by_chapter` renumbers them within each chapter,
    with the chapter's own number: "Figure 2.3", "Exercise 2.1".

The PDF (LaTeX builder only)
    * The typed number is taken off each chapter title, and LaTeX's chapter
      counter starts at -1 (``latex_elements`` in ``_config.yml``), so that
      LaTeX prints "Chapter 0 Overfitting" and numbers figures "0.1", as the
      HTML does.
    * Math in a heading becomes ``\\texorpdfstring{math}{text}``: hyperref
      cannot put unicode-math's symbols into a PDF bookmark.
    * Sphinx gathers every page's bibliography at the end of the PDF, so a
      work cited in four chapters was listed four times; each work is kept
      once, the citations are pointed at it, the list is sorted, and the
      chapters' own "References" sections, left empty, are dropped.

Accessibility (HTML)
    * The docutils bibliography is a ``div role="list"`` whose entries have
      ``role="doc-biblioentry"``, a role ARIA deprecated and that a list may
      not contain (axe: aria-required-children, critical). The entries become
      ``role="listitem"``.
    * A pandas table's corner cell (above the index) is an empty ``<th>``,
      and so is the blank corner of a Markdown table; a header cell must
      name something (axe: empty-table-header). An empty header cell becomes
      a plain ``<td>``.

    * A hidden cell's toggle (``<summary>``) is labelled "Toggle hidden
      content", not what it shows ("Show code cell source"; axe:
      label-content-name-mismatch); the label is dropped, so its name is its
      visible text.

Citation labels
    The ``authoryear`` pybtex style labels a work "Ba et al., 2016", as the
    text cites it, instead of alpha's "BKH16". Two works of one first author
    and year are told apart by a letter ("He et al., 2016a" and "2016b"); the
    ``author_year_label`` reference style takes the year of a citation from
    that label, so the text cites the work as the list names it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

CHAPTER_TITLE = re.compile(r"^(\d+)\.\s+")


# --- numbering by chapter -------------------------------------------------------------------


def chapter_numbers(titles: dict[str, str]) -> dict[str, int]:
    """The chapter number of each document whose title starts with "N. "."""
    found = {}
    for docname, title in titles.items():
        match = CHAPTER_TITLE.match(title)
        if match:
            found[docname] = int(match[1])
    return found


def renumber(fignumbers: dict[str, dict[str, dict[str, tuple[int, ...]]]],
             chapters: dict[str, int]) -> list[str]:
    """Renumber, in place, the enumerables of each chapter as (chapter, 1, 2, ...).

    ``fignumbers`` is Sphinx's ``env.toc_fignumbers``: docname -> figure type
    -> node id -> number. The order within a chapter is kept. Returns the
    documents whose numbers changed.
    """
    changed = []
    for docname, by_type in fignumbers.items():
        if docname not in chapters:
            continue
        for figtype, ids in by_type.items():
            ordered = sorted(ids, key=ids.__getitem__)
            new = {fid: (chapters[docname], k) for k, fid in enumerate(ordered, start=1)}
            if new != ids:
                by_type[figtype] = new
                changed.append(docname)
    return sorted(set(changed))


def number_by_chapter(app, env) -> list[str]:
    chapters = chapter_numbers({d: t.astext() for d, t in env.titles.items()})
    return renumber(env.toc_fignumbers, chapters)


# --- the PDF --------------------------------------------------------------------------------

GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ",
    "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "ϕ", "varphi": "φ", "chi": "χ",
    "psi": "ψ", "omega": "ω", "ell": "ℓ", "nabla": "∇", "partial": "∂",
}


def pdf_text(tex: str) -> str:
    """Plain text for a PDF bookmark from a formula: Greek letters as Unicode."""
    text = re.sub(r"\\([A-Za-z]+)", lambda m: GREEK.get(m[1], m[1]), tex)
    return re.sub(r"[{}^_$\\]", "", text).strip()


class LatexTitles(SphinxPostTransform):
    """Chapter titles without their typed number; math in titles safe for bookmarks."""

    default_priority = 700
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        for start in self.document.findall(addnodes.start_of_file):
            section = next(iter(start.findall(nodes.section)), None)
            if section is None or not isinstance(section[0], nodes.title):
                continue
            title = section[0]
            first = title[0] if len(title) else None
            if isinstance(first, nodes.Text) and CHAPTER_TITLE.match(first.astext()):
                title.replace(first, nodes.Text(CHAPTER_TITLE.sub("", first.astext(), 1)))
        for title in list(self.document.findall(nodes.title)):
            for math in list(title.findall(nodes.math)):
                tex = math.astext()
                raw = (rf"\texorpdfstring{{\protect\({tex}\protect\)}}"
                       rf"{{{pdf_text(tex)}}}")
                math.replace_self(nodes.raw("", raw, format="latex"))


def citation_keys(env) -> dict[tuple[str, str], str]:
    """(docname, citation id) -> bibtex key, for every bibliography entry of the book."""
    domain = env.get_domain("cite")
    return {(c.bibliography_key.docname, c.citation_id): c.key for c in domain.citations}


HYPERLINK = re.compile(r"\\hyperlink\{cite\.([^}]*)\}")


class OneBibliography(SphinxPostTransform):
    """Each work once in the PDF's bibliography (after Sphinx gathers them, priority 750)."""

    default_priority = 760
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        from sphinx.builders.latex.nodes import thebibliography

        keys = citation_keys(self.env)
        for bib in self.document.findall(thebibliography):
            kept: dict[str, nodes.citation] = {}
            alias: dict[str, str] = {}
            for citation in list(bib.findall(nodes.citation)):
                anchor = f"{citation['docname']}:{citation['ids'][0]}"
                key = keys.get((citation["docname"], citation["ids"][0]), anchor)
                if key in kept:
                    first = kept[key]
                    alias[anchor] = f"{first['docname']}:{first['ids'][0]}"
                    citation.parent.remove(citation)
                else:
                    kept[key] = citation
            for citation in kept.values():
                citation.parent.remove(citation)
            for citation in sorted(kept.values(), key=lambda c: c[0].astext().lower()):
                bib += citation
            for raw in self.document.findall(nodes.raw):
                text = raw.astext()
                if "\\hyperlink{cite." in text:
                    new = HYPERLINK.sub(
                        lambda m, a=alias: rf"\hyperlink{{cite.{a.get(m[1], m[1])}}}", text)
                    if new != text:
                        raw.replace_self(nodes.raw("", new, format=raw.get("format", "latex")))
        # Each chapter's "References" section lost its list to the end of the
        # book: drop the sections left with nothing but their title.
        for section in list(self.document.findall(nodes.section)):
            title = section[0] if len(section) and isinstance(section[0], nodes.title) else None
            if title is not None and section.astext().strip() == title.astext().strip():
                section.parent.remove(section)


# --- accessibility of the HTML --------------------------------------------------------------


def fix_bibliography_roles(html: str) -> str:
    """``role="doc-biblioentry"`` (deprecated, not allowed in a list) -> ``role="listitem"``."""
    return html.replace('role="doc-biblioentry"', 'role="listitem"')


TABLE = re.compile(r"<table\b.*?</table>", re.S)
EMPTY_TH = re.compile(r"<th(\s[^>]*)?>\s*(?:<p>\s*</p>\s*)?</th>")


def fix_empty_table_headers(html: str) -> str:
    """An empty ``<th>`` (a pandas table's corner cell, a table's blank corner) -> ``<td>``."""
    return TABLE.sub(lambda t: EMPTY_TH.sub(lambda m: f"<td{m[1] or ''}></td>", t[0]), html)


def fix_toggle_labels(html: str) -> str:
    """A hidden cell's toggle is named by what it shows ("Show code cell source").

    myst-nb labels the ``<summary>`` "Toggle hidden content", which is not its
    visible text (axe: label-content-name-mismatch, serious); without the
    label, its accessible name is the visible "Show/Hide code cell source".
    """
    return html.replace('<summary aria-label="Toggle hidden content">', "<summary>")


def accessible_body(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if body:
        context["body"] = fix_toggle_labels(
            fix_empty_table_headers(fix_bibliography_roles(body)))


# --- author-year labels ---------------------------------------------------------------------


def _register_authoryear_style() -> None:
    from pybtex.plugin import register_plugin
    from pybtex.richtext import Text
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle

    def surname(person) -> str:
        return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as(
            "text")

    class AuthorYearLabels(BaseLabelStyle):
        """'Krogh and Hertz, 1992', 'Ba et al., 2016'; 'a', 'b' when two would clash."""

        def format_labels(self, sorted_entries: Iterable) -> Iterable[str]:
            entries = list(sorted_entries)
            labels = [self.format_label(e) for e in entries]
            for label in labels:
                same = [i for i, other in enumerate(labels) if other == label]
                if len(same) > 1:
                    for n, i in enumerate(same):
                        labels[i] = label + "abcdefghijklmnopqrstuvwxyz"[n]
            return labels

        def format_label(self, entry) -> str:
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [surname(p) for p in people]
            if len(names) == 1:
                who = names[0]
            elif len(names) == 2:
                who = f"{names[0]} and {names[1]}"
            elif names:
                who = f"{names[0]} et al."
            else:
                who = entry.fields.get("key", "Anon.")
            return f"{who}, {entry.fields.get('year', 'n.d.')}"

    class AuthorYearStyle(UnsrtStyle):
        default_label_style = "authoryear"
        default_sorting_style = "author_year_title"

    register_plugin("pybtex.style.labels", "authoryear", AuthorYearLabels, force=True)
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle, force=True)


def label_year(label: str) -> str:
    """The year of an author-year label, with its letter: 'He et al., 2016a' -> '2016a'."""
    return label.rsplit(", ", 1)[-1]


def _register_label_year_references() -> None:
    """sphinxcontrib-bibtex's ``author_year`` citations, with the year from the label."""
    from dataclasses import dataclass, fields

    from pybtex.richtext import Text
    from sphinxcontrib.bibtex.plugin import register_plugin
    from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle
    from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
        BasicAuthorYearParentheticalReferenceStyle as Parenthetical,
    )
    from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
        BasicAuthorYearTextualReferenceStyle as Textual,
    )
    from sphinxcontrib.bibtex.style.template import (
        join,
        join2,
        node,
        post_text,
        pre_text,
        reference,
    )

    @node
    def year(children, data):
        assert not children
        return Text(label_year(data["formatted_entry"].label))

    @dataclass
    class ParentheticalLabelYear(Parenthetical):
        def inner(self, role_name: str):   # as the parent's, with this year
            return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
                pre_text,
                reference[join(sep=self.author_year_sep)[
                    self.person.author_or_editor_or_title(full="s" in role_name), year]],
                post_text]

    @dataclass
    class TextualLabelYear(Textual):
        def inner(self, role_name: str):   # as the parent's, with this year
            return join(sep=self.text_reference_sep)[
                self.person.author_or_editor_or_title(full="s" in role_name),
                join[self.bracket.left,
                     join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
                         pre_text, reference[year], post_text],
                     self.bracket.right]]

    @dataclass
    class AuthorYearLabelReferenceStyle(AuthorYearReferenceStyle):
        def __post_init__(self):
            super().__post_init__()
            swap = {Parenthetical: ParentheticalLabelYear, Textual: TextualLabelYear}
            self.styles[:] = [
                swap[type(s)](**{f.name: getattr(s, f.name) for f in fields(s)})
                if type(s) in swap else s for s in self.styles]
            self.role_style.update((role, style) for style in self.styles
                                   for role in style.role_names())

    register_plugin("sphinxcontrib.bibtex.style.referencing", "author_year_label",
                    AuthorYearLabelReferenceStyle, force=True)


def setup(app):
    _register_authoryear_style()
    _register_label_year_references()
    app.connect("env-get-updated", number_by_chapter, priority=900)
    app.add_post_transform(LatexTitles)
    app.add_post_transform(OneBibliography)
    app.connect("html-page-context", accessible_body, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
