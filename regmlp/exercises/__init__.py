"""Checkers for the book's exercises, one per exercise.

Each chapter's checkers live in their own module (``ch01_weight_decay`` and
so on) and are re-exported here, so a notebook writes
``from regmlp.exercises import check_adamw_step``. A checker raises
``AssertionError`` with a message a learner can act on when the code is wrong
(including a stub that still raises ``NotImplementedError``), and prints one
line when it is right.
"""

from . import (
    ch00_overfitting,
    ch01_weight_decay,
    ch02_dropout,
    ch03_early_stopping,
    ch04_layernorm,
    ch05_residual,
    ch06_putting_it_together,
)
from ._common import assert_close, passed, run_learner_code
from .ch00_overfitting import *  # noqa: F403
from .ch01_weight_decay import *  # noqa: F403
from .ch02_dropout import *  # noqa: F403
from .ch03_early_stopping import *  # noqa: F403
from .ch04_layernorm import *  # noqa: F403
from .ch05_residual import *  # noqa: F403
from .ch06_putting_it_together import *  # noqa: F403

CHAPTER_MODULES = (ch00_overfitting, ch01_weight_decay, ch02_dropout, ch03_early_stopping,
                   ch04_layernorm, ch05_residual, ch06_putting_it_together)

__all__ = ["assert_close", "passed", "run_learner_code", "CHAPTER_MODULES"]
for _module in CHAPTER_MODULES:
    __all__ += _module.__all__
