"""Wrong calls fail early, with the right exception and a message that names the argument.

DESIGN.md §3.7: bad input gets a clear ``ValueError``/``TypeError`` that
names the argument and what was expected -- never a raw NumPy error from deep
inside, and never a silent wrong answer. A file that is missing or a folder
keeps the ``OSError`` that ``open`` gives (``FileNotFoundError``,
``IsADirectoryError``), with a message naming the path. Each row below is one
wrong call; the calls run in an empty temporary folder.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from regmlp.gradcheck import check_gradients, numerical_gradient
from regmlp.layers import Dense, Dropout, LayerNorm, Parameter, ReLU, Residual, Sequential
from regmlp.losses import MSE
from regmlp.optim import SGD, SGDW, Adam, AdamW
from regmlp.penalties import L2

NAN, INF = float("nan"), float("inf")


def params():
    return [Parameter(np.ones(3))]


def model():
    return Sequential(Dense(3, 4, rng=0), ReLU(), Dense(4, 1, rng=1))


def state_without(key):
    state = model().state_dict()
    del state[key]
    return state


def state_with(key, value):
    return {**model().state_dict(), key: value}


def call(layer, x):
    return lambda: layer(x)


CASES = [
    # --- layers: shapes --------------------------------------------------------------
    ("dense-wrong-width", call(Dense(3, 2, rng=0), np.ones((4, 5))),
     ValueError, r"Dense\(3, 2.*expects x of shape \(batch, 3\), got \(4, 5\)"),
    ("dense-1d-input", call(Dense(3, 2, rng=0), np.ones(3)),
     ValueError, r"Dense.*expects x of shape \(batch, 3\)"),
    ("dense-3d-input", call(Dense(3, 2, rng=0), np.ones((2, 2, 3))),
     ValueError, r"expects x of shape"),
    ("layernorm-dim-mismatch", call(LayerNorm(4), np.ones((2, 5))),
     ValueError, r"LayerNorm\(4.*expects x with last axis 4, got shape \(2, 5\)"),
    ("residual-shape-mismatch", call(Residual(Dense(4, 3, rng=0)), np.ones((2, 4))),
     ValueError, r"Residual block must keep the shape of its input"),
    # --- layers: dtypes --------------------------------------------------------------
    ("dense-string-input", call(Dense(2, 2, rng=0), np.array([["a", "b"]])),
     TypeError, r"x must be a numeric"),
    ("dense-bool-input", call(Dense(2, 2, rng=0), np.ones((3, 2), dtype=bool)),
     TypeError, r"x must be a numeric.*got dtype bool"),
    ("dense-object-input", call(Dense(2, 2, rng=0), np.array([[1.0, None]], dtype=object)),
     TypeError, r"x must be a numeric.*got dtype object"),
    ("relu-string-input", call(ReLU(), np.array(["a"])), TypeError, r"x must be a numeric"),
    ("relu-bool-input", call(ReLU(), np.array([True, False])),
     TypeError, r"x must be a numeric.*bool"),
    ("dropout-string-input", call(Dropout(0.5, rng=0), np.array(["a", "b"])),
     TypeError, r"x must be a numeric"),
    ("layernorm-object-input", call(LayerNorm(2), np.array([[1, None]], dtype=object)),
     TypeError, r"x must be a numeric"),
    ("parameter-string", lambda: Parameter(np.array(["a"])), TypeError, r"value must be a numeric"),
    ("parameter-bool", lambda: Parameter(np.array([True])), TypeError, r"value must be a numeric"),
    # --- layers: constructor arguments ---------------------------------------------
    ("dense-n_in-zero", lambda: Dense(0, 3), ValueError, r"n_in must be a positive integer"),
    ("dense-n_out-negative", lambda: Dense(3, -1), ValueError, r"n_out must be a positive"),
    ("dense-n_in-float", lambda: Dense(2.5, 3), ValueError, r"n_in must be a positive integer"),
    ("dense-int-dtype", lambda: Dense(2, 3, dtype=np.int64), TypeError, r"dtype must be a float"),
    ("dense-unknown-dtype", lambda: Dense(2, 3, dtype="float65"),
     TypeError, r"dtype must be a floating-point NumPy dtype .*got 'float65'"),
    ("dense-bad-rng", lambda: Dense(2, 3, rng="seed"), TypeError, r"rng must be a numpy"),
    ("dense-negative-seed", lambda: Dense(2, 3, rng=-1),
     ValueError, r"rng must be a non-negative int seed, got -1"),
    ("dropout-negative-seed", lambda: Dropout(0.5, rng=-3),
     ValueError, r"rng must be a non-negative int seed, got -3"),
    ("layernorm-int-dtype", lambda: LayerNorm(3, dtype=int),
     TypeError, r"dtype must be a floating-point NumPy dtype"),
    ("layernorm-unknown-dtype", lambda: LayerNorm(3, dtype="double-ish"),
     TypeError, r"dtype must be a floating-point NumPy dtype .*got 'double-ish'"),
    ("dropout-p-one", lambda: Dropout(1.0), ValueError, r"p must be in \[0, 1\), got 1"),
    ("dropout-p-negative", lambda: Dropout(-0.1), ValueError, r"p must be in \[0, 1\)"),
    ("dropout-p-nan", lambda: Dropout(NAN), ValueError, r"p must be finite"),
    ("dropout-p-string", lambda: Dropout("0.5"), TypeError, r"p must be a real number"),
    ("dropout-bad-rng", lambda: Dropout(0.5, rng=1.5), TypeError, r"rng must be a numpy"),
    ("layernorm-dim-zero", lambda: LayerNorm(0), ValueError, r"dim must be a positive integer"),
    ("layernorm-eps-negative", lambda: LayerNorm(3, eps=-1.0), ValueError, r"eps must be in"),
    ("residual-not-a-layer", lambda: Residual(np.ones(3)), TypeError, r"block must be a Layer"),
    ("sequential-not-a-layer", lambda: Sequential(Dense(2, 2, rng=0), "relu"),
     TypeError, r"layers\[1\] must be a Layer, got str"),
    # --- state dicts -----------------------------------------------------------------
    ("state-missing-key", lambda: model().load_state_dict(state_without("2.bias")),
     ValueError, r"state has the wrong keys: missing \['2.bias'\]"),
    ("state-extra-key", lambda: model().load_state_dict(state_with("3.weight", np.ones(2))),
     ValueError, r"unexpected \['3.weight'\]"),
    ("state-wrong-shape", lambda: model().load_state_dict(state_with("0.weight", np.ones((4, 3)))),
     ValueError, r"state\['0.weight'\] has shape \(4, 3\), expected \(3, 4\)"),
    ("state-string-values",
     lambda: model().load_state_dict(state_with("2.bias", np.array(["x"]))),
     TypeError, r"state\['2.bias'\] must be a numeric"),
    ("state-not-a-dict", lambda: model().load_state_dict([("0.weight", np.ones((3, 4)))]),
     TypeError, r"state must be a dict"),
    # --- checkpoints: save and load (DESIGN.md §3.6) --------------------------------
    ("save-none", lambda: model().save(None),
     TypeError, r"path must be a str or a path-like object, got None"),
    ("save-to-a-folder", lambda: model().save(folder("runs")),
     IsADirectoryError, r"path runs is a folder; give a file name inside it"),
    ("save-missing-folder", lambda: model().save("nowhere/checkpoint"),
     FileNotFoundError, r"cannot save to nowhere/checkpoint: the folder nowhere does not"),
    ("load-none", lambda: model().load(None),
     TypeError, r"path must be a str or a path-like object, got None"),
    ("load-missing", lambda: model().load("missing.npz"),
     FileNotFoundError, r"no checkpoint at missing\.npz"),
    ("load-folder", lambda: model().load(folder("runs")), IsADirectoryError, r"runs is a folder"),
    ("load-truncated", lambda: model().load(truncated("cut")),
     ValueError, r"cut is not a checkpoint written by save"),
    ("load-empty", lambda: model().load(written("empty", b"")),
     ValueError, r"empty is not a checkpoint written by save"),
    ("load-corrupt-entry", lambda: model().load(corrupted("bad")),
     ValueError, r"bad: entry '0\.weight' cannot be read \(truncated or corrupt"),
    ("load-npy", lambda: model().load(npy("single.npy")),
     ValueError, r"single\.npy holds a single array \(\.npy\), not a checkpoint"),
    ("load-pickle", lambda: model().load(written("state.pkl", pickle.dumps({"a": 1}))),
     ValueError, r"state\.pkl is not a checkpoint written by save"),
    ("load-object-array", lambda: model().load(with_object_array("obj.npz")),
     ValueError, r"obj\.npz: entry '2\.bias' is not a numeric array and is not loaded"),
    ("load-wrong-model", lambda: model().load(saved_from(Sequential(Dense(3, 2, rng=0)), "c")),
     ValueError, r"c does not fit this model: state has the wrong keys"),
    # --- losses --------------------------------------------------------------------------
    ("mse-n-vs-n1", lambda: MSE().forward(np.ones((5, 1)), np.ones(5)),
     ValueError, r"target must have the shape of pred \(5, 1\), got \(5,\)"),
    ("mse-n1-vs-n", lambda: MSE().forward(np.ones(5), np.ones((5, 1))),
     ValueError, r"target must have the shape of pred"),
    ("mse-string-pred", lambda: MSE().forward(np.array(["a"]), np.ones(1)),
     TypeError, r"pred must be a numeric"),
    ("mse-bool-target", lambda: MSE().forward(np.ones(2), np.array([True, False])),
     TypeError, r"target must be a numeric"),
    # --- optimizers ---------------------------------------------------------------------
    ("sgd-lr-negative", lambda: SGD(params(), lr=-1), ValueError, r"lr must be in \[0, inf\)"),
    ("sgd-lr-inf", lambda: SGD(params(), lr=INF), ValueError, r"lr must be finite"),
    ("sgd-lr-nan", lambda: SGD(params(), lr=NAN), ValueError, r"lr must be finite"),
    ("sgdw-lr-string", lambda: SGDW(params(), lr="0.1"), TypeError, r"lr must be a real number"),
    ("sgd-weight_decay-negative", lambda: SGD(params(), lr=0.1, weight_decay=-1),
     ValueError, r"weight_decay must be in \[0, inf\)"),
    ("adamw-weight_decay-inf", lambda: AdamW(params(), weight_decay=INF),
     ValueError, r"weight_decay must be finite"),
    ("sgd-momentum-negative", lambda: SGD(params(), lr=0.1, momentum=-0.5),
     ValueError, r"momentum must be in \[0, inf\)"),
    ("sgdw-momentum-nan", lambda: SGDW(params(), lr=0.1, momentum=NAN),
     ValueError, r"momentum must be finite"),
    ("adam-eps-negative", lambda: Adam(params(), eps=-1), ValueError, r"eps must be in \[0, inf\)"),
    ("adam-beta1-one", lambda: Adam(params(), betas=(1.0, 0.9)),
     ValueError, r"betas\[0\] must be in \[0, 1\), got 1"),
    ("adamw-beta2-negative", lambda: AdamW(params(), betas=(0.9, -0.1)),
     ValueError, r"betas\[1\] must be in \[0, 1\)"),
    ("adam-betas-one-value", lambda: Adam(params(), betas=(0.9,)),
     ValueError, r"betas must be a pair"),
    ("adam-betas-float", lambda: Adam(params(), betas=0.9), ValueError, r"betas must be a pair"),
    ("optimizer-empty-params", lambda: SGD([], lr=0.1), ValueError, r"params is empty"),
    ("optimizer-non-parameter", lambda: Adam([np.ones(3)]),
     TypeError, r"params\[0\] must be a Parameter, got ndarray"),
    ("optimizer-single-parameter", lambda: SGD(Parameter(np.ones(3)), lr=0.1),
     TypeError, r"params must be a list of Parameter"),
    ("optimizer-model-not-parameters", lambda: AdamW(model()),
     TypeError, r"params must be a list of Parameter \(e.g. model.parameters\(\)\), got Seq"),
    # --- penalties --------------------------------------------------------------------
    ("l2-non-parameter", lambda: L2(0.1).loss([np.ones(3)]),
     TypeError, r"params\[0\] must be a Parameter"),
    # --- gradient checks ---------------------------------------------------------------
    ("numgrad-int-x", lambda: numerical_gradient(lambda v: 0.0, np.arange(3)),
     TypeError, r"x must be a floating-point numpy array"),
    ("numgrad-list-x", lambda: numerical_gradient(lambda v: 0.0, [1.0, 2.0]),
     TypeError, r"x must be a floating-point numpy array"),
    ("check_gradients-not-a-layer", lambda: check_gradients(lambda x: x, np.ones((2, 2))),
     TypeError, r"model must be a Layer"),
    ("check_gradients-string-x", lambda: check_gradients(Dense(2, 2, rng=0), np.array([["a"]])),
     TypeError, r"x must be a numeric"),
    ("check_gradients-bad-rng", lambda: check_gradients(Dense(2, 2, rng=0), np.ones((1, 2)),
                                                        rng="r"),
     TypeError, r"rng must be a numpy"),
]


# --- files for the checkpoint rows (written into the test's temporary folder) ---------------


def folder(name):
    Path(name).mkdir()
    return name


def written(name, content: bytes):
    Path(name).write_bytes(content)
    return name


def saved_from(net, name):
    net.save(name)
    return name


def truncated(name):
    model().save(name)
    return written(name, Path(name).read_bytes()[:400])


def corrupted(name):
    """A checkpoint with bytes flipped inside the first entry's data: a CRC error."""
    model().save(name)
    data = bytearray(Path(name).read_bytes())
    data[200:204] = bytes(b ^ 0xFF for b in data[200:204])
    return written(name, bytes(data))


def npy(name):
    np.save(name, np.ones(3))
    return name


def with_object_array(name):
    state = {**model().state_dict(), "2.bias": np.array([None], dtype=object)}
    np.savez(name, **state)
    return name


# --- training, callbacks and data (other modules; imported lazily inside each call) ----------


def fit_with(train, **kwargs):
    from regmlp.training import fit

    net = Sequential(Dense(3, 1, rng=0))
    options = dict(loss=MSE(), optimizer=SGD(net.parameters(), lr=0.1), epochs=1, progress=False)
    return fit(net, train, **{**options, **kwargs})


def with_nan(a):
    a = np.array(a, dtype=float)
    a.flat[0] = np.nan
    return a


class BeginBomb:
    """A callback whose on_train_begin raises: a check that runs later is too late."""

    def __new__(cls):
        from regmlp.callbacks import Callback

        class Bomb(Callback):
            def on_train_begin(self, state):
                raise RuntimeError("on_train_begin ran before the arguments were checked")

        return Bomb()


def train_epoch_with(minibatches, **kwargs):
    from regmlp.training import train_epoch

    net = Sequential(Dense(3, 1, rng=0))
    options = dict(loss=MSE(), optimizer=SGD(net.parameters(), lr=0.1))
    return train_epoch(net, minibatches, **{**options, **kwargs})


def batches_of(*args, **kwargs):
    from regmlp.training import batches

    return list(batches(*args, **kwargs))


def data_function(name, *args):
    import regmlp.data

    return getattr(regmlp.data, name)(*args)


def book(**kwargs):
    from regmlp.models import book_model

    return book_model(**kwargs)


def stopper_class():
    from regmlp.callbacks import EarlyStopping

    return EarlyStopping


def he_init_of(layer):
    from regmlp.models import he_init

    return he_init(layer, np.random.default_rng(0))


def early_stopping(**kwargs):
    from regmlp.callbacks import EarlyStopping

    return EarlyStopping(**kwargs)


def house_prices(**kwargs):
    from regmlp.data import load_house_prices

    return load_house_prices(**kwargs)


X, Y = np.ones((4, 3)), np.ones((4, 1))

CASES += [
    ("fit-ragged-x", lambda: fit_with(([[1.0, 2.0, 3.0], [1.0, 2.0]], [[1.0], [2.0]])),
     ValueError, r"train x must be a rectangular array; a nested list whose rows"),
    # the class instead of an instance: refused before any callback runs
    ("fit-loss-class", lambda: fit_with((X, Y), loss=MSE, callbacks=[BeginBomb()]),
     TypeError, r"loss must be an instance, not the class MSE: write loss=MSE\(\)"),
    ("fit-optimizer-class", lambda: fit_with((X, Y), optimizer=SGD, callbacks=[BeginBomb()]),
     TypeError, r"optimizer must be an instance, not the class SGD"),
    ("fit-penalty-class", lambda: fit_with((X, Y), penalty=L2, callbacks=[BeginBomb()]),
     TypeError, r"penalty must be an instance, not the class L2: write penalty=L2\(1e-3\)"),
    ("fit-callback-class", lambda: fit_with((X, Y), callbacks=[BeginBomb(), stopper_class()]),
     TypeError, r"callbacks\[1\] must be an instance, not the class EarlyStopping"),
    ("fit-negative-seed", lambda: fit_with((X, Y), rng=-1, callbacks=[BeginBomb()]),
     ValueError, r"rng must be a non-negative int seed, got -1"),
    ("train_epoch-no-batches", lambda: train_epoch_with([]),
     ValueError, r"minibatches is empty"),
    ("train_epoch-loss-class", lambda: train_epoch_with([(X, Y)], loss=MSE),
     TypeError, r"loss must be an instance, not the class MSE"),
    ("batches-shuffle-string", lambda: batches_of(X, Y, 2, shuffle="no"),
     TypeError, r"shuffle must be True or False, got 'no'"),
    ("batches-negative-seed", lambda: batches_of(X, Y, 2, rng=-5),
     ValueError, r"rng must be a non-negative int seed, got -5"),
    ("fit-epochs-negative", lambda: fit_with((X, Y), epochs=-1),
     ValueError, r"epochs must be a positive integer"),
    ("fit-batch_size-zero", lambda: fit_with((X, Y), batch_size=0),
     ValueError, r"batch_size must be a positive integer"),
    ("earlystopping-mode-auto", lambda: early_stopping(mode="auto"),
     ValueError, r"mode must be 'min' or 'max', got 'auto'"),
    ("earlystopping-patience-negative", lambda: early_stopping(patience=-1),
     ValueError, r"patience must be a non-negative integer"),
    ("earlystopping-min_delta-negative", lambda: early_stopping(min_delta=-0.1),
     ValueError, r"min_delta must be in \[0, inf\)"),
    ("data-negative-seed", lambda: house_prices(seed=-1),
     ValueError, r"seed must be a non-negative int seed, got -1"),
    ("split_indices-too-few-rows", lambda: data_function("split_indices", 2),
     ValueError, r"of 2 rows give split sizes 1, 0, 1; every split needs a row"),
    ("fit_scaler-1d", lambda: data_function("fit_scaler", np.ones(3)),
     ValueError, r"train must have shape \(n, columns\)"),
    ("fit_scaler-nan", lambda: data_function("fit_scaler", with_nan(np.ones((2, 2)))),
     ValueError, r"train must be finite"),
    ("book_model-negative-seed", lambda: book(rng=-2),
     ValueError, r"rng must be a non-negative int seed, got -2"),
    ("book_model-init-unknown", lambda: book(init="xavier"),
     ValueError, r"init must be one of \('pytorch', 'he'\), got 'xavier'"),
    ("book_model-dropout-one", lambda: book(dropout=1.0),
     ValueError, r"dropout must be in \[0, 1\)"),
    ("book_model-width-zero", lambda: book(width=0), ValueError, r"width must be a positive"),
    ("book_model-depth-float", lambda: book(depth=1.5), TypeError, r"depth must be a non-negative"),
    ("book_model-layernorm-string", lambda: book(layernorm="yes"),
     TypeError, r"layernorm must be True or False"),
    ("book_model-residual-int", lambda: book(residual=1),
     TypeError, r"residual must be True or False, got 1"),
    ("book_model-n_in-zero", lambda: book(n_in=0), ValueError, r"n_in must be a positive"),
    ("he_init-not-dense", lambda: he_init_of(LayerNorm(3)),
     TypeError, r"layer must be a Dense layer, got LayerNorm"),
]


@pytest.mark.parametrize("call, exc, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(call, exc, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(exc, match=message) as info:
        call()
    # our own exception, not NumPy's (UFuncTypeError and friends subclass TypeError)
    assert type(info.value) is exc
    assert isinstance(info.value, (ValueError, TypeError, FileNotFoundError, IsADirectoryError))


def test_the_table_is_large_and_ids_are_unique():
    assert len(CASES) >= 25
    ids = [c[0] for c in CASES]
    assert len(set(ids)) == len(ids)
