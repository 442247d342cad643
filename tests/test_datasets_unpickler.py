"""bnpy.datasets' restricted unpickler for CIFAR batches: crafted pickles are refused before
anything runs, the allowed globals cannot be misused, opcodes the official files never use are
refused by a scan first, and a bounded fuzz of byte edits gives only DataFileError or a valid batch.
Batches are written by tests/dataset_fixtures.py in the official format."""

import os
import pickle

import numpy as np
import pytest
from dataset_checks import Exploit, mutations
from dataset_fixtures import py2_pickle, write_cifar10

from bnpy.datasets import DataFileError, UnsafePickleError, cifar, cifar10

# Every test runs isolated (dataset_checks.py): no real HOME, $BNPY_DATA, system folder or download.
pytestmark = pytest.mark.usefixtures("isolated")


# --------------------------------------------------------------------------------------------------
# the restricted unpickler


def _crafted_pickles(marker):
    protocol_0 = "cos\nsystem\n(S'touch {}'\ntR.".format(marker).encode()
    return {
        "os.system, protocol 0 GLOBAL": protocol_0,
        "os.system inside a batch dict, protocol 2": pickle.dumps(
            {"data": Exploit(marker)}, protocol=2
        ),
        "os.system via STACK_GLOBAL, protocol 4": pickle.dumps(Exploit(marker), protocol=4),
        "builtins.eval": pickle.dumps(_EvalExploit(marker), protocol=2),
    }


class _EvalExploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, ("open({!r}, 'w').close()".format(self.marker),))


@pytest.mark.parametrize(
    "case",
    [
        "os.system, protocol 0 GLOBAL",
        "os.system inside a batch dict, protocol 2",
        "os.system via STACK_GLOBAL, protocol 4",
        "builtins.eval",
    ],
)
def test_crafted_pickle_is_refused_and_nothing_runs(tmp_path, case):
    marker = str(tmp_path / "pwned")
    data = _crafted_pickles(marker)[case]
    expected = write_cifar10(str(tmp_path / "d"), batches=(1,))
    with open(os.path.join(expected["dir"], "data_batch_1"), "wb") as f:
        f.write(data)
    with pytest.raises(
        UnsafePickleError,
        match=r"asks to load the global (posix|os|nt|builtins|__builtin__)\.(system|eval)",
    ):
        cifar10.load_data(path=expected["dir"])
    assert not os.path.exists(marker)
    assert isinstance(UnsafePickleError("x"), (ValueError, pickle.UnpicklingError))


def test_the_exploit_fixture_really_is_one(tmp_path):
    """Guard for the test above: plain pickle.loads of the same bytes does run the command."""
    marker = str(tmp_path / "pwned")
    pickle.loads(_crafted_pickles(marker)["builtins.eval"])
    assert os.path.exists(marker)


def test_allowed_globals_cannot_be_misused(tmp_path):
    # _reconstruct with something other than numpy.ndarray as the class
    misuse = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85U\x01b\x87R."
    with pytest.raises(UnsafePickleError, match="only numpy.ndarray is allowed"):
        cifar.unpickle_batch(misuse, "misuse")
    # numpy.ndarray called directly (REDUCE): the token it resolves to is not callable
    direct = b"\x80\x02cnumpy\nndarray\nK\x02\x85R."
    with pytest.raises(DataFileError, match="not a readable CIFAR batch"):
        cifar.unpickle_batch(direct, "direct")
    # object arrays could carry anything: numpy.dtype('O') is refused
    object_dtype = b"\x80\x02cnumpy\ndtype\nU\x02O8\x89\x88\x87R."
    with pytest.raises(UnsafePickleError, match="only plain numeric dtypes"):
        cifar.unpickle_batch(object_dtype, "object")
    # other numpy globals are not on the list
    matrix = b"\x80\x02cnumpy\nmatrix\n."
    with pytest.raises(UnsafePickleError, match="global numpy.matrix"):
        cifar.unpickle_batch(matrix, "matrix")


def test_opcodes_official_files_lack_are_refused_before_unpickling():
    with pytest.raises(UnsafePickleError, match="opcode INST at byte 1"):
        cifar.unpickle_batch(b"(ios\nsystem\n.", "inst")
    with pytest.raises(UnsafePickleError, match="opcode EXT1"):
        cifar.unpickle_batch(b"\x80\x02\x82\x01.", "ext")  # copyreg's extension registry
    with pytest.raises(UnsafePickleError, match="opcode BYTEARRAY8"):
        cifar.unpickle_batch(b"\x80\x05\x96" + (1).to_bytes(8, "little") + b"x.", "bytearray")
    # A memo index near 2**31 would make CPython's unpickler allocate gigabytes: refused by the scan.
    with pytest.raises(DataFileError, match="memo entry 2147483647 stored when only 1 exist"):
        cifar.unpickle_batch(b"\x80\x02}q\x00]r\xff\xff\xff\x7f.", "memo")
    with pytest.raises(DataFileError, match="ends without a STOP"):
        cifar.unpickle_batch(b"\x80\x02}q\x00", "cut")


def test_mutated_batches_give_a_clear_error_or_a_valid_batch():
    """A bounded fuzz: 1,500 random byte edits of a small batch never crash, hang or leak other errors."""
    base = py2_pickle(
        {
            b"batch_label": b"x",
            b"labels": [1, 2, 3],
            b"filenames": [b"a", b"b", b"c"],
            b"data": (np.arange(3 * 3072) % 7).astype(np.uint8).reshape(3, 3072),
        }
    )
    structure_end = base.index(b"T")  # edits mostly before the raw pixel bytes, where structure is
    outcomes = {"error": 0, "valid": 0}
    for mutated in mutations(base, 1500, seed=2017, focus_end=structure_end + 5):
        try:
            images, labels = cifar.parse_batch(mutated, "fuzz")
        except DataFileError:
            outcomes["error"] += 1
            continue
        assert (
            images.dtype == np.uint8
            and images.shape[1:] == (3, 32, 32)
            and len(labels) == len(images)
        )
        outcomes["valid"] += 1
    assert outcomes["error"] > 1000  # the edits really do break most batches


def test_numpy2_written_batches_are_accepted(tmp_path):
    """A batch re-pickled by NumPy 2 (protocol 3+) names numpy._core.multiarray._reconstruct."""
    rows = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072) % 251
    data = pickle.dumps({b"data": rows, b"labels": [3, 4]}, protocol=3)
    images, labels = cifar.parse_batch(data, "numpy2")
    np.testing.assert_array_equal(images.reshape(2, 3072), rows)
    assert labels == [3, 4]


def test_wrong_batch_contents_are_reported(tmp_path):
    with pytest.raises(DataFileError, match=r"'data' should be a uint8 array of shape \(N, 3072\)"):
        cifar.parse_batch(
            py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}), "b"
        )
    with pytest.raises(DataFileError, match="has 2 images but 1 labels"):
        cifar.parse_batch(py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}), "b")
    with pytest.raises(DataFileError, match="has no 'labels' entry"):
        cifar.parse_batch(py2_pickle({b"data": np.zeros((2, 3072), np.uint8)}), "b")
