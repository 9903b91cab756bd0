"""regmlp: regularised multilayer perceptrons from scratch, in NumPy.

The companion package of the book *Regularization from Scratch*. Names and
semantics follow PyTorch, so that what you learn here carries over.
"""

from .callbacks import EarlyStopping
from .data import load_house_prices
from .gradcheck import check_gradients
from .layers import Dense, Dropout, LayerNorm, ReLU, Residual, Sequential
from .losses import MSE
from .optim import SGD, SGDW, Adam, AdamW
from .penalties import L1, L2
from .training import evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "Sequential", "Dense", "ReLU", "Dropout", "LayerNorm", "Residual",
    "MSE", "SGD", "SGDW", "Adam", "AdamW", "L1", "L2",
    "EarlyStopping", "fit", "evaluate", "predict", "load_house_prices", "check_gradients",
]
