"""bnpy.utils.io_utils.atomic_output, the one way bnpy writes files: the old file or the complete
new one, never half; a failed write leaves nothing; stale temporary files of killed writers go."""
import os
import time

import pytest

from bnpy.models import Sequential
from bnpy.layers import Dense
from bnpy.utils.io_utils import STALE_TEMP_SECONDS, atomic_output


def test_the_file_appears_whole_or_not_at_all(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with atomic_output(str(path), ".w-") as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".w-")
        with open(tmp, "wb") as f:
            f.write(b"new")
        assert path.read_bytes() == b"old"  # nothing visible before the block ends
    assert path.read_bytes() == b"new"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(str(path), ".w-") as tmp:
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_stale_temporary_files_of_killed_writers_are_removed(tmp_path):
    """What a SIGKILLed save_weights leaves (tests/test_interrupts.py) goes at the next write into
    the folder once it is older than STALE_TEMP_SECONDS; a young one may be a live writer's, and
    files of other prefixes or suffixes are not this writer's."""
    old = time.time() - 2 * STALE_TEMP_SECONDS
    names = {"stale": ".bnpy-weights-k1ll3d.tmp", "young": ".bnpy-weights-l1v3.tmp",
             "other prefix": ".tmp-abc.tmp", "other suffix": ".bnpy-weights-abc.part"}
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if key != "young":
            os.utime(tmp_path / name, (old, old))
    Sequential([Dense(2, input_shape=(3,))]).save_weights(str(tmp_path / "w.npz"))
    assert sorted(os.listdir(tmp_path)) == sorted(["w.npz"] + [n for k, n in names.items() if k != "stale"])
