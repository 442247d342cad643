"""bnpy's main job: the article's BN experiment and the BN paper's Figure 1.

Command line: ``bnpy-experiment article|paper-fig1 [options]`` or
``python -m bnpy.experiments article|paper-fig1 [options]``; ``--help`` lists the options.

* :mod:`bnpy.experiments.article`: the article's LeNet-5-style network in four groups (all four
  commented BN lines enabled; only comment 4; no BN; the script as printed), trained with the
  article's settings, compared in ``summary.md`` and ``history.png``.
* :mod:`bnpy.experiments.paper_fig1`: Figure 1 of Ioffe & Szegedy (2015), a 3x100 sigmoid MLP
  with and without BN: test accuracy and sigmoid-input percentiles against training steps.

Every run writes into its own directory (never over an earlier run's results), checkpoints after
every epoch (or evaluation) atomically, and resumes with ``--resume``.
"""


def main(argv=None, **kwargs):
    """The command line (see ``bnpy-experiment --help``); returns the exit status."""
    # Imported here, not at package import, so `python -m bnpy.experiments` runs __main__ once.
    from .__main__ import main as _main

    return _main(argv, **kwargs)


__all__ = ["main"]
