"""The environment of a child Python process started by a test: it must import the bnpy this
process imported (the installed package or an in-place build), whatever its working directory.
Tests start children from another cwd so that a source checkout's bnpy/ (without its compiled
core when the package is installed with pip) cannot shadow it."""

import os

import bnpy


def child_env(base=None, **variables):
    """``base`` (default os.environ) plus ``variables``, with PYTHONPATH = the folder holding the
    imported bnpy, then this process's own PYTHONPATH entries."""
    bnpy_parent = os.path.dirname(os.path.dirname(os.path.abspath(bnpy.__file__)))
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(
        os.environ if base is None else base,
        **variables,
        PYTHONPATH=os.pathsep.join([bnpy_parent] + inherited),
    )
