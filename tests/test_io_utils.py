"""bnpy.utils.io_utils.atomic_output, the one way bnpy writes files: the old file or the complete
new one, never half; a failed write leaves nothing; stale temporary files of killed writers go.
And NpzArchive, the way bnpy reads .npz files: entry by entry, within their declared sizes."""

import io
import os
import re
import stat
import time
import zipfile

import numpy as np
import pytest

from bnpy.layers import Dense
from bnpy.models import Sequential
from bnpy.utils.io_utils import STALE_TEMP_SECONDS, NpzArchive, atomic_output


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
    names = {
        "stale": ".bnpy-weights-bnpy-tmp-4242-0badf00d.tmp",
        "young": ".bnpy-weights-bnpy-tmp-4243-1ee7c0de.tmp",
        "other prefix": ".tmp-bnpy-tmp-4244-c0ffee00.tmp",
        "other suffix": ".bnpy-weights-bnpy-tmp-4245-deadbeef.part",
    }
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if key != "young":
            os.utime(tmp_path / name, (old, old))
    Sequential([Dense(2, input_shape=(3,))]).save_weights(str(tmp_path / "w.npz"))
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["w.npz"] + [n for k, n in names.items() if k != "stale"]
    )


USER_FILES = [
    ".tmp-thesis",
    ".tmp-notes.tmp",
    ".tmp-",
    ".bnpy-weights-draft.tmp",
    ".bnpy-weights-bnpy-tmp-12-abc.tmp",
    ".tmp-bnpy-tmp-1-0badf00d.tmp.bak",
    ".bnpy-weights-bnpy-tmp-x-0badf00d.tmp",
]


def _old_user_files(folder):
    old = time.time() - 10 * STALE_TEMP_SECONDS
    for name in USER_FILES:
        (folder / name).write_bytes(b"the user's")
        os.utime(folder / name, (old, old))


@pytest.mark.parametrize(
    "prefix, suffix", [(".tmp-", ".tmp"), (".tmp-", ""), (".bnpy-weights-", ".tmp")]
)
def test_old_files_bnpy_did_not_make_are_never_removed(tmp_path, prefix, suffix):
    """Only names atomic_output makes (<prefix>bnpy-tmp-<pid>-<8 hex><suffix>) count as stale
    temporaries; an old user file that merely starts with the prefix stays (even with suffix '')."""
    _old_user_files(tmp_path)
    with atomic_output(str(tmp_path / "out"), prefix, suffix) as tmp:
        assert re.fullmatch(
            re.escape(prefix)
            + r"bnpy-tmp-{}-[0-9a-f]{{8}}".format(os.getpid())
            + re.escape(suffix),
            os.path.basename(tmp),
        )
        open(tmp, "wb").close()
    assert sorted(os.listdir(tmp_path)) == sorted(USER_FILES + ["out"])


def test_save_weights_and_experiment_files_keep_users_tmp_files(tmp_path):
    from bnpy.experiments._common import atomic_write_bytes

    _old_user_files(tmp_path)
    Sequential([Dense(2, input_shape=(3,))]).save_weights(str(tmp_path / "w.npz"))
    atomic_write_bytes(str(tmp_path / "run.json"), b"{}")
    assert sorted(os.listdir(tmp_path)) == sorted(USER_FILES + ["w.npz", "run.json"])


# ---- the written file is the one open() would give: mode, symbolic links --------------------------


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(previous)


def _write(path, data, prefix=".w-"):
    with atomic_output(str(path), prefix) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def test_a_new_file_gets_0666_less_the_umask(tmp_path, umask_027):
    _write(tmp_path / "new.bin", b"new")
    assert stat.S_IMODE(os.stat(tmp_path / "new.bin").st_mode) == 0o640
    Sequential([Dense(2, input_shape=(3,))]).save_weights(str(tmp_path / "w.npz"))
    assert stat.S_IMODE(os.stat(tmp_path / "w.npz").st_mode) == 0o640


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o664, 0o604])
def test_an_overwritten_file_keeps_its_mode(tmp_path, umask_027, mode):
    path = tmp_path / "kept.bin"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    _write(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


def test_writing_to_a_symlink_updates_its_target_and_keeps_the_link(tmp_path):
    real_folder = tmp_path / "real"
    real_folder.mkdir()
    target = real_folder / "weights.npz"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.npz"
    os.symlink(os.path.join("real", "weights.npz"), str(link))  # relative, as users make them
    _write(link, b"new")
    assert os.path.islink(link) and os.readlink(link) == os.path.join("real", "weights.npz")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real"]
    assert os.listdir(real_folder) == ["weights.npz"]
    # A dangling link: open() creates its target; so does the atomic writer.
    dangling = tmp_path / "dangling.npz"
    os.symlink(os.path.join("real", "later.npz"), str(dangling))
    _write(dangling, b"created")
    assert os.path.islink(dangling) and (real_folder / "later.npz").read_bytes() == b"created"
    # save_weights goes the same way
    Sequential([Dense(2, input_shape=(3,))]).save_weights(str(link))
    assert os.path.islink(link) and target.read_bytes()[:2] == b"PK"


# ---- NpzArchive: .npz entries read on demand, within their declared sizes ----------------------


def test_npz_archive_reads_what_np_load_reads(tmp_path):
    arrays = {
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "big_endian": np.arange(5, dtype=">i4"),
        "empty": np.zeros((0, 3)),
        "record": np.zeros(3, dtype=[("x", "<f4"), ("y", "<i2")]),
        "text": np.array("hello"),
        "names": np.array(["ab", "cde"]),
    }
    path = str(tmp_path / "a.npz")
    np.savez_compressed(path, **arrays)
    with NpzArchive(path, "test", "test file") as archive:
        assert sorted(archive) == sorted(arrays) and len(archive) == len(arrays)
        for name, expected in arrays.items():
            assert archive.shape_and_dtype(name) == (expected.shape, expected.dtype)
            got = archive[name]
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected)
        assert archive["fortran"].flags.f_contiguous
        assert "missing" not in archive
        with pytest.raises(KeyError):
            archive["missing"]


def test_npz_archive_refuses_pickles_and_entries_longer_than_their_header(tmp_path):
    path = str(tmp_path / "objects.npz")
    np.savez(path, fine=np.arange(3), objects=np.array([{"a": 1}], dtype=object))
    with NpzArchive(path, "test", "test file") as archive:
        np.testing.assert_array_equal(archive["fine"], np.arange(3))  # the other entries still load
        with pytest.raises(
            ValueError,
            match=r"test: .*objects.npz is not a readable test file "
            r"\(ValueError: the entry 'objects' holds Python objects",
        ):
            archive.shape_and_dtype("objects")
    # an entry whose header announces 3 int64 (24 bytes) but holds 24 + 8
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i8", "fortran_order": False, "shape": (3,)}
    )
    path = str(tmp_path / "long.npz")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("long.npy", header.getvalue() + bytes(32))
    with NpzArchive(path, "test", "test file", error=OSError) as archive:
        with pytest.raises(
            OSError,
            match=r"says it holds a int64 array of shape \(3,\) \(24 bytes\) "
            r"but the zip declares 32 bytes",
        ):
            archive["long"]
