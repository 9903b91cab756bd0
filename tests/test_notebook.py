"""regmlp.notebook.glue: myst-nb's glue in the book build, harmless everywhere else."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest

from regmlp.notebook import glue


@pytest.fixture
def recorded(monkeypatch):
    """Replace myst_nb.glue by a recorder (the book build's glue needs a kernel)."""
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True:
                        calls.append((name, value, display)))
    return calls


def test_glue_passes_through_to_myst_nb(recorded):
    glue("wd_best", 0.25, display=False)
    assert recorded == [("wd_best", 0.25, False)]


def test_numpy_scalars_become_python_numbers(recorded):
    glue("a", np.float64(0.5), display=False)
    glue("b", np.int64(3), display=False)
    assert recorded == [("a", 0.5, False), ("b", 3, False)]
    assert type(recorded[0][1]) is float and type(recorded[1][1]) is int
    assert repr(recorded[0][1]) == "0.5"  # not "np.float64(0.5)", which myst-nb cannot format


def test_without_myst_nb_glue_only_displays(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name == "myst_nb":
            raise ImportError("No module named 'myst_nb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "myst_nb", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_myst)
    glue("silent", 1.5, display=False)
    assert capsys.readouterr().out == ""
    glue("shown", 1.5)
    assert capsys.readouterr().out.strip() == "1.5"


@pytest.mark.parametrize("name", ["", None, 3])
def test_name_must_be_a_string(name):
    with pytest.raises(TypeError, match="name must be a non-empty string"):
        glue(name, 1.0, display=False)
