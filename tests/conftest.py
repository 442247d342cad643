"""Shared pytest configuration: shared fixtures, and a report header that names the bnpy, NumPy and threads
a run used, so that a failure report says which build it came from."""

import os

import pytest

# Helper modules shared by several test files (not plugins, which pytest rewrites anyway): their
# asserts report values on failure like the tests' own.
pytest.register_assert_rewrite("batchnorm_checks", "bn_variant_checks", "conv_checks")

# Fixtures shared by several test files (local_server: a stand-in for the dataset mirrors;
# isolated: no real HOME or dataset folder for the bnpy.datasets tests; digits_root, cifar_root
# and offline: tiny datasets and no network for the bnpy-experiment tests).
pytest_plugins = ["dataset_fixtures", "dataset_checks", "experiment_fixtures"]


def pytest_report_header(config):
    try:
        import numpy

        import bnpy
        from bnpy import _core
    except ImportError as exc:  # the tests that need bnpy say so themselves
        return ["bnpy: not importable ({})".format(exc)]
    return [
        "bnpy {} from {}; NumPy {}; OpenMP {}; kernel threads {}; cores {}".format(
            bnpy.__version__,
            os.path.dirname(bnpy.__file__),
            numpy.__version__,
            "yes" if _core.HAVE_OPENMP else "no (serial build)",
            bnpy.get_num_threads(),
            os.cpu_count(),
        )
    ]
