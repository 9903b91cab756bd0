"""The functions of tools/sphinx_book.py, the book's local Sphinx extension, one by one.

The built HTML and PDF are checked in tests/test_browser.py and tests/test_pdf.py;
these tests pin each rule down on small inputs, including the inputs it exists to fix.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import sphinx_book as sb  # noqa: E402


def test_chapter_numbers_come_from_the_titles():
    titles = {"chapters/00_overfitting": "0. Overfitting", "chapters/02_dropout": "2. Dropout",
              "chapters/intro": "Regularization from Scratch", "chapters/api": "API reference"}
    assert sb.chapter_numbers(titles) == {"chapters/00_overfitting": 0, "chapters/02_dropout": 2}


def test_renumber_counts_within_each_chapter_from_its_own_number():
    # Sphinx numbers through the whole book: chapter 2's figures are 5, 6, 7.
    fignumbers = {
        "chapters/00_overfitting": {"figure": {"a": (1,), "b": (2,)}},
        "chapters/02_dropout": {"figure": {"c": (6,), "d": (5,), "e": (7,)},
                                "exercise": {"x": (3,)}},
        "chapters/api": {"figure": {"z": (8,)}},
    }
    changed = sb.renumber(fignumbers, {"chapters/00_overfitting": 0, "chapters/02_dropout": 2})
    assert fignumbers["chapters/00_overfitting"]["figure"] == {"a": (0, 1), "b": (0, 2)}
    # the order within the chapter is kept: d (5) before c (6) before e (7)
    assert fignumbers["chapters/02_dropout"]["figure"] == {"d": (2, 1), "c": (2, 2), "e": (2, 3)}
    assert fignumbers["chapters/02_dropout"]["exercise"] == {"x": (2, 1)}
    assert fignumbers["chapters/api"]["figure"] == {"z": (8,)}  # not a chapter: untouched
    assert changed == ["chapters/00_overfitting", "chapters/02_dropout"]
    assert sb.renumber(fignumbers, {"chapters/00_overfitting": 0,
                                    "chapters/02_dropout": 2}) == []  # idempotent


def test_pdf_text_of_a_formula():
    assert sb.pdf_text(r"\varepsilon") == "ε"
    assert sb.pdf_text(r"\lambda_{1}") == "λ1"
    assert "\\" not in sb.pdf_text(r"\frac{a}{b}")


def test_bibliography_entries_become_list_items():
    html = '<div role="list" class="citation-list"><div class="citation" role="doc-biblioentry">'
    assert sb.fix_bibliography_roles(html) == (
        '<div role="list" class="citation-list"><div class="citation" role="listitem">')


def test_empty_header_cells_become_data_cells_and_others_stay():
    html = ('<table class="dataframe"><thead><tr><th></th><th>valid</th></tr></thead></table>'
            '<table class="docutils"><tr><th class="head"><p></p></th><th>x</th></tr></table>'
            "<p><th></th> outside a table stays</p>")
    fixed = sb.fix_empty_table_headers(html)
    assert "<td></td><th>valid</th>" in fixed
    assert '<td class="head"></td><th>x</th>' in fixed
    assert "<p><th></th> outside" in fixed


def test_toggle_is_named_by_its_visible_text():
    html = ('<summary aria-label="Toggle hidden content">'
            '<p class="collapsed admonition-title">Show code cell source</p></summary>')
    assert sb.fix_toggle_labels(html).startswith("<summary><p")


@pytest.fixture(scope="module")
def labels():
    pybtex_database = pytest.importorskip("pybtex.database")
    from pybtex.plugin import find_plugin

    sb._register_authoryear_style()
    data = pybtex_database.parse_string(r"""
    @article{one, author={De Cock, Dean}, title={A}, journal={J}, year={2011}}
    @article{two, author={Krogh, Anders and Hertz, John A.}, title={B}, journal={J}, year={1992}}
    @article{three, author={Ba, Jimmy Lei and Kiros, Jamie Ryan and Hinton, Geoffrey E.},
             title={C}, journal={J}, year={2016}}
    @article{four, author={M{\"u}ller, K.}, title={D}, journal={J}, year={2001}}
    @article{five, author={M{\"u}ller, K.}, title={E}, journal={J}, year={2001}}
    """, "bibtex")
    style = find_plugin("pybtex.style.formatting", "authoryear")()
    return {e.key: e.label for e in style.format_entries(data.entries.values())}


def test_author_year_labels_read_as_the_text_cites(labels):
    assert labels["one"] == "De Cock, 2011"
    assert labels["two"] == "Krogh and Hertz, 1992"
    assert labels["three"] == "Ba et al., 2016"
    assert sorted([labels["four"], labels["five"]]) == ["Müller, 2001a", "Müller, 2001b"]


def test_label_year_keeps_the_letter():
    assert sb.label_year("He et al., 2016a") == "2016a"
    assert sb.label_year("Krogh and Hertz, 1992") == "1992"


def test_citations_take_their_year_from_the_list_label(labels):
    # Two works of He et al., 2016: the text must say 2016a and 2016b, as the
    # list does; sphinxcontrib-bibtex's author_year style says 2016 for both.
    pybtex_database = pytest.importorskip("pybtex.database")
    from pybtex.plugin import find_plugin
    from sphinxcontrib.bibtex.plugin import find_plugin as find_reference_style
    from sphinxcontrib.bibtex.style.referencing import format_references
    from sphinxcontrib.bibtex.style.template import SphinxReferenceInfo

    sb._register_label_year_references()
    data = pybtex_database.parse_string(r"""
    @article{a, author={He, K. and Zhang, X. and Ren, S.}, title={A}, journal={J}, year={2016}}
    @article{b, author={He, K. and Zhang, X. and Ren, S.}, title={B}, journal={J}, year={2016}}
    """, "bibtex")
    entries = list(data.entries.values())
    formatted = {e.key: e for e in find_plugin("pybtex.style.formatting", "authoryear")()
                 .format_entries(entries)}

    def cite(style_name: str, role: str, key: str) -> str:
        style = find_reference_style("sphinxcontrib.bibtex.style.referencing", style_name)()
        info = SphinxReferenceInfo(builder=None, fromdocname="d", todocname="d",
                                   citation_id=key, title="", pre_text="", post_text="")
        return str(format_references(style, role, [(data.entries[key], formatted[key], info)]))

    assert {formatted["a"].label, formatted["b"].label} == {"He et al., 2016a",
                                                           "He et al., 2016b"}
    for key in "ab":
        letter = formatted[key].label[-1]
        assert cite("author_year_label", "p", key) == f"[He et al., 2016{letter}]"
        assert cite("author_year_label", "t", key) == f"He et al. [2016{letter}]"
    # the known-wrong variant: the stock style drops the letter
    assert cite("author_year", "p", "a") == "[He et al., 2016]"
