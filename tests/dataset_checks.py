"""Shared by the tests of bnpy.datasets (test_datasets.py, test_datasets_unpickler.py,
test_datasets_digits.py), through conftest's pytest_plugins: the ``isolated`` fixture, which each
of those files applies to every test, a pickle that runs a command when plainly unpickled, and
random byte edits of a file."""

import os

import numpy as np
import pytest


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A fresh HOME, no $BNPY_DATA, an empty system folder, and no downloads unless a test allows."""
    # imported here, not at the top: conftest loads this module for every test session
    from bnpy.datasets import _lookup

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(_lookup.ENV_DATA, raising=False)
    monkeypatch.setenv(_lookup.ENV_OFFLINE, "1")
    system = tmp_path / "system"
    system.mkdir()
    monkeypatch.setattr(_lookup, "SYSTEM_DATA_DIRS", [str(system)])
    return {"home": home, "keras": home / ".keras" / "datasets", "system": system}


class Exploit:
    """Unpickling this with plain pickle would run ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


def mutations(data, count, seed, focus_end=None):
    """`count` copies of `data` with 1-3 random byte edits each (replace, delete, insert); with
    focus_end, 9 edits in 10 fall before that offset (where a file's structure is)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        mutated = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            limit = len(mutated)
            if focus_end is not None and rng.random() < 0.9:
                limit = focus_end
            position = int(rng.integers(0, limit))
            edit = int(rng.integers(0, 3))
            if edit == 0:
                mutated[position] = int(rng.integers(0, 256))
            elif edit == 1:
                del mutated[position]
            else:
                mutated.insert(position, int(rng.integers(0, 256)))
        yield bytes(mutated)
