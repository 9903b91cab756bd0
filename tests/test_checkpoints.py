"""Saving and loading weights never loses a checkpoint (DESIGN.md §3.6).

``save`` writes exactly the path it is given, through a temporary file in the
same folder renamed into place, so that a save that fails halfway leaves the
previous checkpoint as it was. The bad calls (folders, missing, truncated or
corrupt files, ``.npy``, object arrays, ``None``) are rows of
``tests/test_bad_input.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import same_state

from regmlp.layers import Dense, LayerNorm, ReLU, Sequential


def model(seed: int = 0) -> Sequential:
    return Sequential(Dense(3, 4, rng=seed), LayerNorm(4), ReLU(), Dense(4, 1, rng=seed + 1))


def same_weights(a: Sequential, b: Sequential) -> bool:
    return same_state(a.state_dict(), b.state_dict())


@pytest.mark.parametrize("name", ["checkpoint", "model.npz", "weights.pt", "run.1"])
def test_save_writes_exactly_the_path_and_load_reads_it(tmp_path, name):
    saved, other = model(0), model(5)
    saved.save(tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == [name]       # no ".npz" added, no temp file left
    other.load(tmp_path / name)
    assert same_weights(saved, other)


def test_str_paths_work_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved, other = model(0), model(5)
    saved.save("checkpoint")
    other.load("checkpoint")
    assert same_weights(saved, other) and os.listdir(".") == ["checkpoint"]


def test_the_file_is_a_plain_npz_without_pickles(tmp_path):
    saved = model(0)
    saved.save(tmp_path / "c")
    with np.load(tmp_path / "c", allow_pickle=False) as data:
        assert sorted(data.files) == sorted(saved.state_dict())
        assert all(data[k].dtype == np.float64 for k in data.files)


def test_save_replaces_an_existing_checkpoint(tmp_path):
    path = tmp_path / "c"
    model(0).save(path)
    newer = model(1)
    newer.save(path)
    loaded = model(2)
    loaded.load(path)
    assert same_weights(loaded, newer) and os.listdir(tmp_path) == ["c"]


def test_the_saved_file_has_the_usual_permissions(tmp_path):
    """The temporary file is made with open(), so the umask applies, not mkstemp's 0600."""
    reference = tmp_path / "reference"
    reference.write_bytes(b"")
    model().save(tmp_path / "c")
    assert (tmp_path / "c").stat().st_mode == reference.stat().st_mode


# --- faults: a save interrupted halfway --------------------------------------------------


def half_then(error: BaseException):
    """A stand-in for ``np.savez`` that writes half an archive, then raises ``error``."""
    real = np.savez

    def savez(file, **arrays):
        real(file, **arrays)
        file.seek(file.tell() // 2)
        file.truncate()
        raise error

    return savez


def check_interrupted_save_keeps_the_checkpoint(save, folder, monkeypatch, error) -> None:
    """Save ``model(0)``, then a failing save of ``model(1)``: the first must survive intact."""
    path = folder / "c"
    good = model(0)
    save(good, path)
    monkeypatch.setattr(np, "savez", half_then(error))
    with pytest.raises(type(error)):
        save(model(1), path)
    monkeypatch.undo()
    left = sorted(os.listdir(folder))
    if left != ["c"]:
        raise AssertionError(f"a failed save must leave only the checkpoint, found {left}")
    loaded = model(2)
    loaded.load(path)
    if not same_weights(loaded, good):
        raise AssertionError("a failed save changed the previous checkpoint")


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "KeyboardInterrupt"])
def test_an_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error):
    check_interrupted_save_keeps_the_checkpoint(lambda m, p: m.save(p), tmp_path, monkeypatch,
                                                error)


def test_the_fault_check_catches_a_save_that_writes_in_place(tmp_path, monkeypatch):
    def in_place(m, path):          # the old save: straight into the target file
        with open(path, "wb") as f:
            np.savez(f, **m.state_dict())

    with pytest.raises(AssertionError, match="not a checkpoint|changed the previous"):
        try:
            check_interrupted_save_keeps_the_checkpoint(in_place, tmp_path, monkeypatch,
                                                        OSError(28, "full"))
        except ValueError as err:   # load refuses the half-written file
            raise AssertionError(str(err)) from err


def test_a_failed_load_leaves_the_model_unchanged(tmp_path):
    path = tmp_path / "c"
    bigger = Sequential(Dense(3, 4, rng=0), LayerNorm(4), ReLU(), Dense(4, 2, rng=1))
    bigger.save(path)
    target = model(3)
    before = target.state_dict()
    with pytest.raises(ValueError, match=r"does not fit this model.*shape"):
        target.load(path)
    assert all(np.array_equal(target.state_dict()[k], v) for k, v in before.items())
