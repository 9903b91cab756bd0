"""The examples in regmlp's docstrings run and print what they say.

The API page of the book is generated from these docstrings, so a wrong
example there would be a wrong statement in the book.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import regmlp

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(regmlp.__path__, prefix="regmlp.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_the_examples_are_many():
    total = 0
    for name in MODULES:
        finder = doctest.DocTestFinder()
        total += sum(len(t.examples) for t in finder.find(importlib.import_module(name)))
    assert total >= 30, f"only {total} docstring examples in regmlp"
