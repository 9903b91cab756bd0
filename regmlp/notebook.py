"""What the book's notebooks need to run anywhere: the book build, Jupyter, Colab, Binder.

The book quotes numbers computed in its notebooks through myst-nb's ``glue``,
which only the book build has installed. :func:`glue` records a value when
myst-nb is there and otherwise does what a reader expects of the cell: nothing
(``display=False``) or showing the value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["glue"]


def glue(name: str, value: Any, display: bool = True) -> None:
    """Record ``value`` under ``name`` for the book's text (myst-nb's ``glue``).

    Parameters
    ----------
    name : str
        The key the text refers to, as in ``{glue:text}`name:.3f```.
    value : object
        The number, figure or table to record. A NumPy scalar is recorded as
        the Python number it holds: myst-nb formats ``{glue:text}`` from the
        value's text, and NumPy 2 writes ``np.float64(0.25)``, which it cannot
        format as a number.
    display : bool, default True
        Whether to show the value in the cell's output as well.

    Notes
    -----
    Outside the book build (Colab, Binder, a plain Jupyter) myst-nb may be
    missing; then nothing is recorded and ``value`` is shown only when
    ``display`` is true.

    Examples
    --------
    >>> glue("answer", 42, display=False)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if isinstance(value, np.generic):
        value = value.item()
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)
