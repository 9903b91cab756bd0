"""The examples in regmlp's docstrings run and print what they say.

The API page of the book is generated from these docstrings, so a wrong
example there would be a wrong statement in the book.
"""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import inspect
import pkgutil
import re

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


# --- every parameter of the public API is described -------------------------------------

# The modules this check covers: the package's core (regmlp.exercises, diagnostics and
# experiments have their own owners and tests).
DOCUMENTED = ["regmlp.layers", "regmlp.losses", "regmlp.optim", "regmlp.penalties",
              "regmlp.callbacks", "regmlp.training", "regmlp.data", "regmlp.gradcheck",
              "regmlp.models", "regmlp.notebook"]
SECTION = re.compile(r"^(\s*)([A-Z][A-Za-z ]+)\n\1-{3,}\s*$", re.MULTILINE)


def described_parameters(doc: str | None, section: str = "Parameters") -> set[str]:
    """The names listed in the numpydoc ``section`` of ``doc``."""
    doc = inspect.cleandoc(doc or "")
    names: set[str] = set()
    headers = list(SECTION.finditer(doc))
    for i, header in enumerate(headers):
        if header.group(2) != section:
            continue
        end = headers[i + 1].start() if i + 1 < len(headers) else len(doc)
        for line in doc[header.end():end].splitlines():
            if line.strip() and not line.startswith((" ", "\t")):
                names |= {n.strip().lstrip("*") for n in line.split(" : ")[0].split(",")}
    return names


def parameters_of(func) -> list[str]:
    return [name for name in inspect.signature(func).parameters if name not in ("self", "cls")]


def documented_in_a_base(cls, attr: str, func) -> set[str]:
    """Parameters described by a base class's method of the same name and signature.

    A callback hook or a layer's ``forward`` is documented once, where the protocol
    is defined; an override with the same parameters inherits that description.
    """
    for base in cls.__mro__[1:]:
        member = vars(base).get(attr)
        if inspect.isfunction(member) and parameters_of(member) == parameters_of(func):
            return described_parameters(member.__doc__)
    return set()


def public_callables():
    """(qualified name, callable, described names) for every public function and method
    of the covered modules; a class stands for its ``__init__``."""
    for module_name in DOCUMENTED:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{module_name}.{name}", obj, described_parameters(obj.__doc__)
            elif inspect.isclass(obj) and not issubclass(obj, BaseException):
                if "__init__" in vars(obj):
                    names = described_parameters(obj.__doc__)
                    if dataclasses.is_dataclass(obj):
                        names |= described_parameters(obj.__doc__, "Attributes")
                    yield f"{module_name}.{name}", obj.__init__, names
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not inspect.isfunction(member):
                        continue
                    names = described_parameters(member.__doc__)
                    names |= documented_in_a_base(obj, attr, member)
                    yield f"{module_name}.{name}.{attr}", member, names


CALLABLES = [c for c in public_callables() if parameters_of(c[1])]


@pytest.mark.parametrize("name, func, described", CALLABLES, ids=[c[0] for c in CALLABLES])
def test_every_parameter_is_described(name, func, described):
    missing = [p for p in parameters_of(func) if p not in described]
    assert not missing, f"{name}: no description of {missing} in its Parameters section"


def test_the_check_covers_the_layer_protocol():
    names = [c[0] for c in CALLABLES]
    for layer in ("Dense", "ReLU", "Dropout", "LayerNorm", "Residual", "Sequential"):
        assert f"regmlp.layers.{layer}.forward" in names
        assert f"regmlp.layers.{layer}.backward" in names
    assert "regmlp.losses.MSE.forward" in names


def test_the_parameter_check_reads_numpydoc():
    doc = """Do it.

    Parameters
    ----------
    n_in, n_out : int
        Widths.
    *layers : Layer
    rng

    Returns
    -------
    x : float
    """
    assert described_parameters(doc) == {"n_in", "n_out", "layers", "rng"}
    assert described_parameters("No sections.") == set()
