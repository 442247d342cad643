"""The package imports its compiled core and exposes the thread setting."""

import pytest

import bnpy


def test_core_is_compiled_extension():
    assert bnpy._core.__file__.endswith((".so", ".pyd"))


def test_set_num_threads_round_trip():
    before = bnpy.get_num_threads()
    try:
        assert bnpy.set_num_threads(1) == before
        assert bnpy.get_num_threads() == 1
        bnpy.set_num_threads(2)
        assert bnpy.get_num_threads() == (2 if bnpy._core.HAVE_OPENMP else 1)
    finally:
        bnpy.set_num_threads(before)


@pytest.mark.parametrize(
    "bad, exc", [(0, ValueError), (-3, ValueError), (1.5, TypeError), ("2", TypeError)]
)
def test_set_num_threads_rejects_bad_counts(bad, exc):
    with pytest.raises(exc, match="set_num_threads"):
        bnpy.set_num_threads(bad)
