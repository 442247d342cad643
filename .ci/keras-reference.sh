#!/usr/bin/env bash
# bnpy against real Keras: tests/test_keras_reference.py (the article's four networks trained in
# lock step in bnpy and in tf-keras with Keras 2.0's settings) in a virtual environment of its
# own with tensorflow-cpu and tf-keras, so the main run's environment stays free of TensorFlow.
# Elsewhere the test skips when tf-keras is missing; here a skip fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

venv=$(mktemp -d)/venv
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install -q --upgrade pip
pip install -q tensorflow-cpu tf-keras
rm -rf build  # pip builds in-tree: objects of another build would be reused otherwise
pip install -q ".[test]"
rm -rf build
TF_CPP_MIN_LOG_LEVEL=2 python -c "import tf_keras, tensorflow; print('ci: tf-keras', tf_keras.__version__, 'on TensorFlow', tensorflow.__version__)"
installed=$SECONDS

report=$(mktemp)
pytest -q -rs -p no:cacheprovider tests/test_keras_reference.py | tee "$report"
if grep -qi "skipped" "$report" || ! grep -q " passed" "$report"; then
  echo "ci: tests/test_keras_reference.py skipped tests or passed none: it must run here"; exit 1
fi
echo "ci: keras reference: $((installed - start)) s to install, $((SECONDS - installed)) s to test"
