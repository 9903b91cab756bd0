"""How fast is regmlp? Side by side with PyTorch (CPU), a per-sample loop and BLAS itself.

The machine these run on is shared and noisy, so every speed figure is a *ratio* of two
timings taken in the same run, interleaved (A B, B A, A B, ...: each pair back to back,
alternating which goes first) and summarised by medians. Nothing here is a timed test: the
script prints the figures, compares them with the targets and writes them to
``benchmarks/RESULTS.md``.

What it measures, with Adam (``lr=1e-3``) and MSE on every side:

1. epoch time of ``regmlp.fit`` over that of the idiomatic PyTorch loop (``nn.Sequential``
   of ``Linear``/``ReLU``, ``MSELoss``, ``optim.Adam``, a ``randperm`` per epoch and slices of
   a pre-made tensor, no DataLoader), from the same initial weights, for the book's model
   (33 -> 64 -> 64 -> 1 on the house-price training split, batch 64) and a wide one
   (512 -> 512 -> 512 -> 512 -> 1 on 8,192 synthetic rows, batch 256), each in float64 and
   float32; for the book's model also the same training written directly in NumPy;
2. epoch time of a per-sample loop (batch size 1, plain NumPy, as a naive from-scratch
   course writes it) over that of ``fit``'s mini-batches, for the book's model;
3. for the wide model, the time of a training step (``zero_grad``, forward, loss,
   backward, the optimizer's step; Adam, and SGD with momentum) over the time of the same
   matrix products (GEMMs) alone: how close a step comes to the BLAS limit;
4. peak memory of a ``fit`` run, as NumPy reports its allocations to ``tracemalloc``;
5. the execution time of every chapter notebook and of the whole book (``nbclient``, a
   kernel of this interpreter, the environment of ``make book``, whose sweeps use two
   processes): the wall time of the build, the cells' own time and the slowest cell;
6. a reader stepping through epochs: ``fit(..., epochs=1)`` called again and again with
   plain SGD, against one epoch of PyTorch's loop and its validation loss;
7. with ``--make-test``, the wall time of ``make test`` on the warm ``.venv``.

Both libraries run with their default number of threads, made equal (PyTorch's is set to
OpenBLAS's if they differ), or with ``--threads N`` for both; both are printed.

Usage::

    make bench                               # installs torch==2.13.0, then runs this
    .venv/bin/python benchmarks/bench.py     # --repeats N, --quick, --threads N,
                                             # --no-chapters, --no-write
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import glob
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from regmlp import MSE, SGD, Adam, Dense, ReLU, Sequential, fit, load_house_prices
from regmlp.training import batches

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"

LR = 1e-3
TARGETS = {  # the targets: (what, at most)
    "book": ("book model, regmlp / PyTorch epoch time", 0.30),
    "sgd_epochs": ("book model, SGD, fit once per epoch, regmlp / PyTorch epoch time", 0.30),
    "chapter_seconds": ("slowest chapter, execution time in s", 15.0),
    "wide": ("wide model, regmlp / PyTorch epoch time", 1.00),
    "step": ("wide model, training step / its GEMMs alone", 1.25),
    "book_seconds": ("whole book, execution time in s", 60.0),
    "make_test_seconds": ("make test on a warm .venv, wall time in s", 240.0),
}


# -- the machine ---------------------------------------------------------------------

def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> str:
    """Name and version of NumPy's BLAS, from ``numpy.show_config``."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # the layout of show_config is not a stable API
        return "unknown BLAS"


def blas_threads() -> int | None:
    """OpenBLAS's thread count, asked from the library NumPy loaded (None if unknown)."""
    try:
        from threadpoolctl import threadpool_info
        counts = [p["num_threads"] for p in threadpool_info() if p.get("internal_api") ==
                  "openblas"]
        if counts:
            return counts[0]
    except ImportError:
        pass
    get = _openblas_function("get_num_threads")
    return None if get is None else int(get())


def set_blas_threads(n: int) -> None:
    """Ask the OpenBLAS that NumPy loaded for ``n`` threads."""
    set_ = _openblas_function("set_num_threads")
    if set_ is None:
        raise RuntimeError("cannot set OpenBLAS's threads: set OPENBLAS_NUM_THREADS instead")
    set_(ctypes.c_int(n))


def _openblas_function(verb: str) -> ctypes._CFuncPtr | None:
    """``openblas_<verb>`` from the OpenBLAS bundled with NumPy (None if not found)."""
    libs = Path(np.__file__).parent.parent / "numpy.libs"
    for path in glob.glob(str(libs / "*openblas*")):
        lib = ctypes.CDLL(path)
        for symbol in (f"scipy_openblas_{verb}64_", f"openblas_{verb}64_", f"openblas_{verb}"):
            if hasattr(lib, symbol):
                return getattr(lib, symbol)
    return None


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "regmlp"], cwd=ROOT,
                               text=True, capture_output=True, check=True).stdout.strip()
        return rev + (" (regmlp/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# -- timing --------------------------------------------------------------------------

def interleaved(fns: dict[str, Callable[[], None]], repeats: int,
                per_call: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Time each function ``repeats`` times, interleaved; seconds per unit of work.

    One warm-up call each first. Then round r calls them in order for even r and in
    reverse order for odd r (A B, B A, ...), so that neither side always runs right after
    the other's threads were busy. ``per_call[name]`` divides a call's time (epochs per call).
    """
    per_call = per_call or {}
    names = list(fns)
    for name in names:
        fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - start) / per_call.get(name, 1))
    return times


@dataclass
class Ratio:
    """Medians of two interleaved series and their ratio."""

    num: list[float]
    den: list[float]

    @property
    def value(self) -> float:
        return statistics.median(self.num) / statistics.median(self.den)

    @property
    def spread(self) -> tuple[float, float]:
        """The smallest and largest ratio of the back-to-back pairs (the noise)."""
        pairs = [a / b for a, b in zip(self.num, self.den, strict=True)]
        return min(pairs), max(pairs)


def ms(seconds: list[float]) -> str:
    return f"{1e3 * statistics.median(seconds):.2f}"


# -- the models ----------------------------------------------------------------------

@dataclass
class Setup:
    name: str
    widths: tuple[int, ...]
    batch_size: int
    x: np.ndarray
    y: np.ndarray


def book_setup() -> Setup:
    train = load_house_prices().train
    return Setup("book", (33, 64, 64, 1), 64, train.x, train.y)


def wide_setup(n: int = 8192) -> Setup:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 512))
    y = np.tanh(x[:, :8]).sum(axis=1, keepdims=True) + 0.1 * rng.standard_normal((n, 1))
    return Setup("wide", (512, 512, 512, 512, 1), 256, x, y)


def regmlp_model(widths: tuple[int, ...], dtype: np.dtype, seed: int = 0) -> Sequential:
    layers: list = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(Dense(n_in, n_out, rng=seed + i, dtype=dtype))
        if i < len(widths) - 2:
            layers.append(ReLU())
    return Sequential(*layers)


def torch_model(model: Sequential, torch: Any) -> Any:
    """The same network in PyTorch, with the same initial weights."""
    nn = torch.nn
    layers = []
    for layer in model:
        if isinstance(layer, Dense):
            dtype = getattr(torch, layer.weight.value.dtype.name)
            linear = nn.Linear(layer.n_in, layer.n_out, dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.weight.value.T.copy()))
                linear.bias.copy_(torch.from_numpy(layer.bias.value.copy()))
            layers.append(linear)
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class TorchLoop:
    """The idiomatic PyTorch training loop, one call = ``epochs`` epochs."""

    def __init__(self, torch: Any, model: Sequential, x: np.ndarray, y: np.ndarray,
                 batch_size: int, seed: int = 0) -> None:
        self.torch = torch
        self.model = torch_model(model, torch)
        dtype = model[0].weight.value.dtype
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
        self.y = torch.from_numpy(np.ascontiguousarray(y, dtype=dtype))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.loss_fn = torch.nn.MSELoss()
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def epochs(self, epochs: int, order: np.ndarray | None = None) -> float:
        torch, n, bs = self.torch, len(self.x), self.batch_size
        self.model.train()
        for _ in range(epochs):
            perm = (torch.randperm(n, generator=self.generator) if order is None
                    else torch.from_numpy(order))
            total = 0.0
            for start in range(0, n, bs):
                idx = perm[start:start + bs]
                xb, yb = self.x[idx], self.y[idx]
                self.optimizer.zero_grad()
                loss = self.loss_fn(self.model(xb), yb)
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(idx)   # the epoch's train loss, as fit records
        return total / n


class RegmlpLoop:
    """``regmlp.fit``, one call = ``epochs`` epochs."""

    def __init__(self, model: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int,
                 seed: int = 0) -> None:
        dtype = model[0].weight.value.dtype
        self.model, self.batch_size = model, batch_size
        self.x, self.y = x.astype(dtype), y.astype(dtype)
        self.optimizer = Adam(model.parameters(), lr=LR)
        self.rng = np.random.default_rng(seed)

    def epochs(self, epochs: int) -> float:
        history = fit(self.model, (self.x, self.y), loss=MSE(), optimizer=self.optimizer,
                      epochs=epochs, batch_size=self.batch_size, rng=self.rng, progress=False)
        return history.train_loss[-1]


def check_same_arithmetic(torch: Any) -> float:
    """Largest weight difference after one float64 epoch on the same batches (book model).

    Shows that the two loops compute the same thing, so that their times compare.
    """
    setup = book_setup()
    model = regmlp_model(setup.widths, np.dtype(np.float64))
    theirs = TorchLoop(torch, model, setup.x, setup.y, setup.batch_size)
    ours = RegmlpLoop(model, setup.x, setup.y, setup.batch_size)
    order = np.random.default_rng(123).permutation(len(setup.x))
    theirs.epochs(1, order=order)
    for xb, yb in zip(np.array_split(setup.x[order], range(64, len(order), 64)),
                      np.array_split(setup.y[order], range(64, len(order), 64)), strict=True):
        ours.optimizer.zero_grad()
        loss = MSE()
        loss.forward(model.forward(xb), yb)
        model.backward(loss.backward())
        ours.optimizer.step()
    diffs = [np.max(np.abs(layer.weight.value - lin.weight.detach().numpy().T))
             for layer, lin in zip([m for m in model if isinstance(m, Dense)],
                                   [m for m in theirs.model if hasattr(m, "weight")],
                                   strict=True)]
    return float(max(diffs))


def bench_vs_torch(torch: Any, setup: Setup, dtype: np.dtype, repeats: int,
                   epochs_per_call: int, plain: bool = False) -> dict[str, list[float]]:
    """Seconds per epoch of regmlp, PyTorch (and the plain NumPy loop), interleaved."""
    model = regmlp_model(setup.widths, dtype)
    loops = {"torch": TorchLoop(torch, model, setup.x, setup.y, setup.batch_size)}
    if plain:
        loops["plain"] = PlainLoop(model, setup.x, setup.y, setup.batch_size)
    loops["regmlp"] = RegmlpLoop(model, setup.x, setup.y, setup.batch_size)  # trains model
    return interleaved({name: (lambda loop=loop: loop.epochs(epochs_per_call))
                        for name, loop in loops.items()},
                       repeats, per_call=dict.fromkeys(loops, epochs_per_call))


# -- a reader stepping through epochs ------------------------------------------------

SGD_LR = 1e-2


def bench_epoch_by_epoch(torch: Any, repeats: int, calls: int = 10) -> Ratio:
    """regmlp / PyTorch seconds per epoch, training one epoch per call with plain SGD.

    As a reader who watches a model learn trains it: ``fit(..., epochs=1)`` again and
    again (each call checks its arguments, evaluates the validation loss and returns a
    History), against PyTorch's loop for one epoch followed by the validation loss in
    ``eval`` mode under ``no_grad``. The book model, float64, batch 64, ``SGD(lr=1e-2)``,
    from the same initial weights.
    """
    data = load_house_prices()
    model = regmlp_model((33, 64, 64, 1), np.dtype(np.float64))
    net = torch_model(model, torch)
    sgd = SGD(model.parameters(), lr=SGD_LR)
    torch_sgd = torch.optim.SGD(net.parameters(), lr=SGD_LR)
    x, y = (torch.from_numpy(a) for a in data.train)
    xv, yv = (torch.from_numpy(a) for a in data.valid)
    loss_fn, generator, rng = torch.nn.MSELoss(), torch.Generator().manual_seed(0), \
        np.random.default_rng(0)

    def regmlp_epochs() -> None:
        for _ in range(calls):
            fit(model, data.train, data.valid, loss=MSE(), optimizer=sgd, epochs=1,
                batch_size=64, rng=rng, progress=False)

    def torch_epochs() -> None:
        for _ in range(calls):
            net.train()
            perm = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), 64):
                idx = perm[start:start + 64]
                torch_sgd.zero_grad()
                loss = loss_fn(net(x[idx]), y[idx])
                loss.backward()
                torch_sgd.step()
            net.eval()
            with torch.no_grad():
                loss_fn(net(xv), yv).item()

    times = interleaved({"torch": torch_epochs, "regmlp": regmlp_epochs}, repeats,
                        per_call={"torch": calls, "regmlp": calls})
    return Ratio(times["regmlp"], times["torch"])


# -- a plain NumPy loop ----------------------------------------------------------------

class PlainLoop:
    """The same mini-batch training written directly in NumPy, without regmlp.

    Vectorised over the batch, with Adam as in ``regmlp.Adam`` (but with temporaries): the
    reference for what regmlp's layers, checks and bookkeeping cost on top of NumPy.
    """

    def __init__(self, model: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int,
                 seed: int = 0) -> None:
        dtype = model[0].weight.value.dtype
        self.params = [p.value.copy() for p in model.parameters()]   # W1, b1, W2, b2, ...
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0
        self.x, self.y = x.astype(dtype), y.astype(dtype)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    def step(self, xb: np.ndarray, yb: np.ndarray) -> float:
        ws, bs = self.params[0::2], self.params[1::2]
        hs, zs = [xb], []
        for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
            z = hs[-1] @ w + b
            zs.append(z)
            hs.append(np.maximum(z, 0) if k < len(ws) - 1 else z)
        diff = hs[-1] - yb
        grad = diff * (2.0 / diff.size)
        grads: list[np.ndarray] = []
        for k in reversed(range(len(ws))):
            if k < len(ws) - 1:
                grad = grad * (zs[k] > 0)
            grads[:0] = [hs[k].T @ grad, grad.sum(axis=0)]
            grad = grad @ ws[k].T
        self.t += 1
        beta1, beta2, eps, t = 0.9, 0.999, 1e-8, self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * (g * g)
            p -= LR / (1 - beta1 ** t) * (m / (np.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps))
        return float(np.sum(diff * diff) / diff.size)

    def epochs(self, epochs: int) -> float:
        n, bs = len(self.x), self.batch_size
        for _ in range(epochs):
            order, total = self.rng.permutation(n), 0.0
            for start in range(0, n, bs):
                rows = order[start:start + bs]
                total += self.step(self.x[rows], self.y[rows]) * len(rows)
        return total / n


# -- the per-sample loop ------------------------------------------------------------------

def per_sample_epoch(params: list[np.ndarray], state: dict, x: np.ndarray, y: np.ndarray,
                     rng: np.random.Generator) -> float:
    """One epoch of a per-sample loop over a 33 -> 64 -> 64 -> 1 ReLU network.

    Written the way a from-scratch course writes it: one sample at a time, vectors
    instead of matrices, a fresh array for every intermediate, and the same Adam update
    as ``regmlp.Adam``, once per sample.
    """
    w1, b1, w2, b2, w3, b3 = params
    m, v = state["m"], state["v"]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    total = 0.0
    for i in rng.permutation(len(x)):
        xi, yi = x[i], y[i]
        z1 = xi @ w1 + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ w2 + b2
        h2 = np.maximum(z2, 0)
        pred = h2 @ w3 + b3
        total += float((pred[0] - yi[0]) ** 2)
        d3 = 2 * (pred - yi)                      # dL/dpred of (pred - y)^2
        d2 = (w3 @ d3) * (z2 > 0)
        d1 = (w2 @ d2) * (z1 > 0)
        grads = [np.outer(xi, d1), d1, np.outer(h1, d2), d2, np.outer(h2, d3), d3]
        state["t"] += 1
        t = state["t"]
        for p, g, mk, vk in zip(params, grads, m, v, strict=True):
            mk[...] = beta1 * mk + (1 - beta1) * g
            vk[...] = beta2 * vk + (1 - beta2) * g * g
            p -= LR / (1 - beta1 ** t) * mk / (np.sqrt(vk) / math.sqrt(1 - beta2 ** t) + eps)
    return total / len(x)


def bench_per_sample(repeats: int) -> Ratio:
    setup = book_setup()
    model = regmlp_model(setup.widths, np.dtype(np.float64))
    params = [p.value.copy() for p in model.parameters()]
    state = {"m": [np.zeros_like(p) for p in params], "v": [np.zeros_like(p) for p in params],
             "t": 0}
    rng = np.random.default_rng(0)
    ours = RegmlpLoop(model, setup.x, setup.y, setup.batch_size)
    epochs = 5
    times = interleaved({"per-sample": lambda: per_sample_epoch(params, state, setup.x,
                                                                setup.y, rng),
                         "regmlp": lambda: ours.epochs(epochs)},
                        repeats, per_call={"regmlp": epochs})
    return Ratio(times["per-sample"], times["regmlp"])


# -- a step against its GEMMs ------------------------------------------------------------

def step_gemms(model: Sequential, xb: np.ndarray, rng: np.random.Generator) -> Callable[[], None]:
    """The matrix products of one regmlp training step, as a function that does only them.

    Per Dense layer, as ``Dense.forward``/``backward`` do them: ``x @ W``, ``x.T @ G`` and
    ``G @ W.T`` (the last also for the first layer, whose input gradient ``backward``
    returns), on the layer's real input, a gradient ``G`` of the right shape and dtype,
    and preallocated outputs: the pure BLAS time.
    """
    model.forward(xb)
    products = []
    for layer in model:
        if isinstance(layer, Dense):
            x, w = layer._x, layer.weight.value
            g = rng.standard_normal((len(x), layer.n_out)).astype(w.dtype)
            products += [(x, w, np.empty((len(x), layer.n_out), w.dtype)),
                         (x.T, g, np.empty_like(w)),
                         (g, w.T, np.empty_like(x))]

    def gemms() -> None:
        for a, b, out in products:
            np.matmul(a, b, out=out)

    return gemms


def bench_step(setup: Setup, dtype: np.dtype, optimizer: str, repeats: int) -> Ratio:
    """A training step of the wide model over its GEMMs alone (``optimizer``: Adam or SGD)."""
    model = regmlp_model(setup.widths, dtype)
    if optimizer == "Adam":
        opt: Adam | SGD = Adam(model.parameters(), lr=LR)
    else:
        opt = SGD(model.parameters(), lr=LR, momentum=0.9)
    loss = MSE()
    x, y = setup.x.astype(dtype), setup.y.astype(dtype)
    data = list(batches(x, y, setup.batch_size, rng=0))
    gemms = step_gemms(model, data[0][0], np.random.default_rng(1))

    def steps() -> None:   # the body of fit's loop (regmlp.training.train_epoch)
        model.train()
        for xb, yb in data:
            opt.zero_grad()
            loss.forward(model.forward(xb), yb)
            model.backward(loss.backward())
            opt.step()

    def gemms_only() -> None:
        for _ in data:
            gemms()

    times = interleaved({"step": steps, "gemms": gemms_only}, repeats,
                        per_call={"step": len(data), "gemms": len(data)})
    return Ratio(times["step"], times["gemms"])


# -- memory --------------------------------------------------------------------------

def peak_fit_memory(setup: Setup, dtype: np.dtype, epochs: int) -> tuple[float, float]:
    """Peak bytes NumPy allocates to build the model and Adam and run ``fit``, in MiB.

    NumPy reports its allocations to ``tracemalloc``. The data (already in ``dtype``) is
    allocated before tracing starts and is not counted. Returns (peak, parameters).
    """
    x, y = setup.x.astype(dtype), setup.y.astype(dtype)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        model = regmlp_model(setup.widths, dtype)
        optimizer = Adam(model.parameters(), lr=LR)
        fit(model, (x, y), loss=MSE(), optimizer=optimizer, epochs=epochs,
            batch_size=setup.batch_size, rng=0, progress=False)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    param_bytes = sum(p.value.nbytes for p in model.parameters())
    return peak / 2**20, param_bytes / 2**20


# -- the book ------------------------------------------------------------------------

# The kernels' environment, as `make book` sets it (the Makefile's RUN and ONE_THREAD).
BOOK_ENV = {"REGMLP_PROGRESS": "0", "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "REGMLP_JOBS": "2"}


def cell_seconds(nb) -> list[float]:
    """Each executed code cell's time, from the timing nbclient records in its metadata."""
    out = []
    for cell in nb.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.status.busy" in timing and "shell.execute_reply" in timing:
            begin = dt.datetime.fromisoformat(timing["iopub.status.busy"])
            end = dt.datetime.fromisoformat(timing["shell.execute_reply"])
            out.append((end - begin).total_seconds())
    return out


def time_chapters(chapters: list[Path]) -> list[tuple[str, float, float, float, str]]:
    """Execute each notebook in a fresh kernel of this interpreter.

    Returns (name, seconds, cell seconds, slowest cell seconds, status) per notebook.
    *seconds* is the wall time of a book build's execution: starting the kernel, the
    cells, shutting the kernel down. *cell seconds* is the sum of the cells' own times,
    what a reader waits for after "Run all" in a running kernel.
    """
    import nbformat
    from nbclient import NotebookClient

    env = {**os.environ, **BOOK_ENV}
    rows = []
    for path in chapters:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=True,
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        try:
            client.execute(env=env, stderr=subprocess.DEVNULL)
            status = "ok"
        except Exception as err:  # report any failure and go on
            status = f"failed: {type(err).__name__}"
        seconds = time.perf_counter() - start
        cells = cell_seconds(nb)
        rows.append((path.name, seconds, sum(cells), max(cells, default=0.0), status))
        print(f"  {path.name:40s} {seconds:6.1f} s  cells {sum(cells):5.1f} s  {status}",
              flush=True)
    return rows


def time_make_test() -> tuple[float, str]:
    """Wall time of ``make test`` from a cleared ``_build`` (the venv stays); (seconds, status)."""
    subprocess.run(["make", "clean"], cwd=ROOT, check=True, capture_output=True)
    start = time.perf_counter()
    done = subprocess.run(["make", "test"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, "passed" if done.returncode == 0 else f"FAILED (exit {done.returncode})"


# -- the report ----------------------------------------------------------------------

def verdict(key: str, value: float) -> str:
    limit = TARGETS[key][1]
    return f"{'met' if value <= limit else 'NOT met'} (target <= {limit:g})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds per comparison")
    parser.add_argument("--quick", action="store_true", help="3 rounds, a smoke test")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both OpenBLAS and PyTorch (default: each library's "
                             "default, made equal)")
    parser.add_argument("--no-chapters", action="store_true", help="skip the notebooks")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    parser.add_argument("--make-test", action="store_true",
                        help="also time `make test` (it rebuilds the book: minutes)")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats

    import torch

    torch_default = torch.get_num_threads()
    if args.threads is not None:
        set_blas_threads(args.threads)
    n_blas = blas_threads()
    if n_blas is not None and n_blas != torch.get_num_threads():
        torch.set_num_threads(n_blas)
    threads = ("set with --threads" if args.threads is not None
               else "both libraries' defaults")
    machine = (f"{cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
               f"numpy {np.__version__} with {blas_info()}, {n_blas} BLAS threads; "
               f"torch {torch.__version__} (CPU), {torch.get_num_threads()} threads "
               f"(its default: {torch_default}); regmlp at {git_revision()}")
    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    say(f"machine: {machine}")
    say(f"threads: {threads}; {repeats} interleaved rounds per comparison, medians; "
        f"Adam(lr={LR}) and MSE on every side")
    say()
    diff = check_same_arithmetic(torch)
    say(f"Same arithmetic: from the same initial weights, after one float64 epoch on the same "
        f"batches, regmlp's and PyTorch's weights differ by at most {diff:.1e}.")
    say()

    say("## regmlp / PyTorch, epoch time")
    say()
    say("| model | dtype | regmlp ms/epoch | PyTorch ms/epoch | regmlp / PyTorch | "
        "pairs min-max | plain NumPy / PyTorch |")
    say("|---|---|---:|---:|---:|---:|---:|")
    book, wide = book_setup(), wide_setup()
    ratios: dict[tuple[str, str], Ratio] = {}
    for setup, epochs in ((book, 5), (wide, 1)):
        for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
            times = bench_vs_torch(torch, setup, dtype, repeats, epochs,
                                   plain=setup is book)
            r = ratios[setup.name, dtype.name] = Ratio(times["regmlp"], times["torch"])
            lo, hi = r.spread
            plain = (f"{Ratio(times['plain'], times['torch']).value:.2f}" if "plain" in times
                     else "")
            say(f"| {setup.name} | {dtype.name} | {ms(r.num)} | {ms(r.den)} | "
                f"**{r.value:.2f}** | {lo:.2f}-{hi:.2f} | {plain} |")
    say()
    say("book: 33 -> 64 -> 64 -> 1 (ReLU), batch 64, the 2,051 rows of the house-price "
        "training split, 5 epochs per timing; wide: 512 -> 512 -> 512 -> 512 -> 1, batch 256, "
        "8,192 synthetic rows, 1 epoch per timing. *plain NumPy*: the same training written "
        "directly in NumPy (vectorised, no regmlp), timed in the same rounds.")
    say()

    say("## per-sample loop / regmlp.fit, epoch time (book model, float64)")
    say()
    r = bench_per_sample(max(3, repeats // 2))
    lo, hi = r.spread
    say(f"per-sample loop {ms(r.num)} ms/epoch, fit {ms(r.den)} ms/epoch: "
        f"**{r.value:.1f}x** (pairs {lo:.1f}-{hi:.1f})")
    say()

    say("## a reader stepping through epochs: SGD, `fit(..., epochs=1)` per call")
    say()
    sgd = bench_epoch_by_epoch(torch, repeats)
    lo, hi = sgd.spread
    say(f"regmlp {ms(sgd.num)} ms/epoch, PyTorch {ms(sgd.den)} ms/epoch: "
        f"**{sgd.value:.2f}** (pairs {lo:.2f}-{hi:.2f})")
    say()
    say(f"The book model in float64, batch 64, `SGD(lr={SGD_LR})`, from the same initial "
        "weights. Each regmlp call is `fit(model, train, valid, epochs=1)` (argument checks, "
        "one epoch, the validation loss, a History); each PyTorch call is one epoch of its "
        "loop, then the validation loss in `eval` mode under `no_grad`.")
    say()

    say("## wide model: training step / its GEMMs alone")
    say()
    say("| optimizer | dtype | step ms | GEMMs ms | step / GEMMs | pairs min-max |")
    say("|---|---|---:|---:|---:|---:|")
    steps: dict[tuple[str, str], Ratio] = {}
    for opt in ("Adam", "SGD"):
        for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
            r = steps[opt, dtype.name] = bench_step(wide, dtype, opt, repeats)
            lo, hi = r.spread
            name = "Adam" if opt == "Adam" else "SGD, momentum 0.9"
            say(f"| {name} | {dtype.name} | {ms(r.num)} | {ms(r.den)} | **{r.value:.2f}** | "
                f"{lo:.2f}-{hi:.2f} |")
    say()
    say("A step is zero_grad, forward, MSE, backward and the optimizer's step on one batch of "
        "256; its GEMMs are the 12 matrix products the step does (x @ W, x.T @ G and G @ W.T "
        "for each of the 4 layers, as Dense does them), timed alone into preallocated "
        "outputs: the BLAS limit. The rest of a step is elementwise NumPy work (bias, ReLU, "
        "gradient accumulation, the optimizer), which runs on one core.")
    say()

    say("## peak memory of a fit run (tracemalloc)")
    say()
    say("| model | dtype | epochs | peak MiB | of which parameters MiB |")
    say("|---|---|---:|---:|---:|")
    for setup, epochs in ((book, 5), (wide, 1)):
        for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
            peak, params = peak_fit_memory(setup, dtype, epochs)
            say(f"| {setup.name} | {dtype.name} | {epochs} | {peak:.1f} | {params:.2f} |")
    say()
    say("The peak of what NumPy allocated (as traced by tracemalloc) while building the model "
        "and Adam and running fit, the data excluded: parameters, gradients and Adam's m and v "
        "(4x the parameters together), then activations and temporaries.")
    say()

    book_seconds = book_cells = slowest = None
    if not args.no_chapters:
        chapters = sorted((ROOT / "chapters").glob("*.ipynb"))
        say("## executing the book")
        say()
        say("Each chapter in a fresh kernel of this interpreter (nbclient), with the "
            "environment of `make book`: " + ", ".join(f"{k}={v}" for k, v in BOOK_ENV.items())
            + ". *wall*: what a book build waits for, from starting the kernel to its "
            "shutdown; *cells*: the sum of the cells' own times, what a reader waits for "
            "after \"Run all\" in a running kernel; *kernel*: the difference, the kernel's "
            "start and shutdown.")
        say()
        if chapters:
            rows = time_chapters(chapters)
            book_seconds = sum(row[1] for row in rows)
            book_cells = sum(row[2] for row in rows)
            slowest = max(row[1] for row in rows if row[0].startswith("0"))
            say("| chapter | wall s | cells s | kernel s | slowest cell s | status |")
            say("|---|---:|---:|---:|---:|---|")
            for name, seconds, cells, top, status in rows:
                say(f"| {name} | {seconds:.1f} | {cells:.1f} | {seconds - cells:.1f} "
                    f"| {top:.1f} | {status} |")
            say(f"| **whole book** | **{book_seconds:.1f}** | {book_cells:.1f} "
                f"| {book_seconds - book_cells:.1f} | | {len(rows)} chapters |")
        else:
            say("No chapters/*.ipynb yet.")
        say()

    make_test_seconds = None
    if args.make_test:
        say("## make test")
        say()
        make_test_seconds, status = time_make_test()
        say(f"`make test` on the warm `.venv`, the book's executed notebooks cleared first "
            f"(`rm -rf _build`): {make_test_seconds:.0f} s wall, {status}.")
        say()

    say("## against the targets")
    say()
    worst_book = max(ratios["book", d].value for d in ("float64", "float32"))
    worst_wide = max(ratios["wide", d].value for d in ("float64", "float32"))
    worst_step = max(steps["Adam", d].value for d in ("float64", "float32"))
    say(f"- {TARGETS['book'][0]}: {worst_book:.2f} (the worse dtype): "
        f"{verdict('book', worst_book)}")
    say(f"- {TARGETS['wide'][0]}: {worst_wide:.2f} (the worse dtype): "
        f"{verdict('wide', worst_wide)}")
    say(f"- {TARGETS['step'][0]}, with Adam: {worst_step:.2f} (the worse dtype): "
        f"{verdict('step', worst_step)}")
    say(f"- {TARGETS['sgd_epochs'][0]}: {sgd.value:.2f}: {verdict('sgd_epochs', sgd.value)}")
    if slowest is not None:
        say(f"- {TARGETS['chapter_seconds'][0]}: {slowest:.1f}: "
            f"{verdict('chapter_seconds', slowest)}")
    if book_seconds is not None:
        say(f"- {TARGETS['book_seconds'][0]}: {book_seconds:.1f}: "
            f"{verdict('book_seconds', book_seconds)}; of which the cells' own time "
            f"{book_cells:.1f} s and the kernels' start and shutdown "
            f"{book_seconds - book_cells:.1f} s (see below)")
    if make_test_seconds is not None:
        say(f"- {TARGETS['make_test_seconds'][0]}: {make_test_seconds:.0f}: "
            f"{verdict('make_test_seconds', make_test_seconds)}")
    say()

    if not args.no_write:
        write_results(out)
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def write_results(lines: list[str]) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/bench.py` on {stamp}; each run replaces this file.",
        "",
        "Reproduce from a fresh clone with `make bench` (it creates `.venv`, installs",
        "`torch==2.13.0` for the CPU and runs `python benchmarks/bench.py`). Options:",
        "`--repeats N` (default 9), `--quick`, `--threads N`, `--no-chapters`, `--no-write`.",
        "The machine is shared and noisy: every speed figure is a ratio of the medians of",
        "interleaved timings from one run (compare ratios between runs, not milliseconds), and",
        "*pairs min-max* is the range of the ratios of back-to-back pairs.",
        "",
    ]
    notes = [
        "## What limits these ratios",
        "",
        "- A regmlp training step is a sequence of small NumPy calls, each with about a",
        "  microsecond of overhead, and the book model's matrix products are small. Per",
        "  parameter (6 in the book's model) `Optimizer.step` with Adam makes 14 ufunc calls:",
        "  the 12 of `Adam.direction`, written as the formula the book shows (each makes a",
        "  new array), and the update. The *plain NumPy* column is the same training written",
        "  directly, its moments updated in place; the gap between the two columns is what",
        "  regmlp's layers, checks and readable update cost. A lower ratio would need fewer",
        "  calls per step, for example one Adam update over all parameters held in one flat",
        "  array. That would change how parameters are stored and the per-parameter",
        "  `Adam.direction` that the book shows.",
        "- Plain SGD stepped one epoch per `fit` call has the same per-step overhead, plus",
        "  `fit`'s per-call work (argument checks, the validation loss, a History). Its ratio",
        "  lies near the 0.30 target and crosses it from run to run on this shared machine;",
        "  *pairs min-max* shows how far it moves within one run.",
        "- In the wide model, the GEMMs use every BLAS thread. NumPy's elementwise work (bias,",
        "  ReLU, gradient accumulation, and the optimizer's passes over the 790k parameters:",
        "  12 new arrays per parameter for Adam, a few in-place passes for SGD with momentum)",
        "  runs on one core between GEMMs and is bound by memory bandwidth; PyTorch spreads",
        "  that work over its threads and updates in place. `Dense.backward` also returns the",
        "  input gradient of the first layer, one GEMM in nine that PyTorch skips because the",
        "  data does not require a gradient. The wide-model rows therefore vary most from",
        "  machine to machine (the CPU is named above).",
        "",
        "## What limits the book's execution time",
        "",
        "- Every chapter pays about 5 s outside its experiments. Starting the kernel takes",
        "  about 1 s and the imports (NumPy, pandas, matplotlib, regmlp) about 1 s more; the",
        "  first sweep starts joblib's two worker processes (about 0.5 s). Then, in the",
        "  *kernel* column, comes about 2.5 s of shutdown: ipykernel sends its child processes",
        "  SIGTERM and waits for them to exit, and the resource trackers that joblib's loky",
        "  and Python's multiprocessing start ignore SIGTERM, so the kernel waits until",
        "  jupyter_client, after half of its 5 s shutdown allowance, terminates it. Only",
        "  private APIs (stopping those trackers) would avoid it, and a reader, whose kernel",
        "  stays up, never waits for it: it is in the build's time, not in *cells*.",
        "- The rest is the experiments: every comparison trains the book's model once per",
        "  seed (at least 5 seeds, 10 in chapter 6), for as many epochs as its effect needs,",
        "  with both cores through `sweep`. A step is already about three times faster than",
        "  PyTorch's and close to plain NumPy (the first table). A whole book",
        "  within a minute would mean fewer runs, configurations or epochs, and a claim that",
        "  holds for any seeds is worth more than the seconds: each such cut would have to be",
        "  re-checked with other seed lists (`make replicate`), and none was made to meet",
        "  the target.",
    ]
    RESULTS.write_text("\n".join(head + lines).rstrip() + "\n\n" + "\n".join(notes) + "\n")


if __name__ == "__main__":
    sys.exit(main())
