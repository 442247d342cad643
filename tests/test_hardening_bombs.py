"""Small files that claim or inflate to gigabytes: loading them must cost little memory and either
succeed (an entry nobody needs) or raise a clear error before the size is allocated.

Each case runs in a child process that first loads a good file of the same kind (so imports and
one-time allocations are not counted), then the bad one, and reports its memory growth: the larger
of tracemalloc's peak (Python and NumPy allocations) and the growth of ru_maxrss (the process's
peak resident memory: C allocations, zlib's buffers). It must stay below MEMORY_LIMIT; the
inflated or claimed sizes are 1 GiB (512 MiB for the model config), so a loader that trusts the
file shows it at once.

``python tests/test_hardening_bombs.py`` prints each case's growth for the bnpy that Python imports
(the figures in docs/reliability.md).
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from bomb_fixtures import Deflated, npy_header, write_gzip, write_npz, write_tar_gz_bomb
from child_python import child_env
from dataset_fixtures import (
    fashion_payloads,
    make_tar_gz,
    write_cifar10,
    write_cifar100,
    write_mnist_npz,
)

MEMORY_LIMIT = 64 << 20
BOMB_MIB = 1024

_CHILD = """
import json, resource, sys, tracemalloc
paths = json.loads(sys.argv[1])
{setup}
def run(path):
{call}
run(paths["good"])  # warm-up: imports, caches, first-call allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
try:
    run(paths["bad"])
    error = None
except Exception as exc:
    error = "{{}}: {{}}".format(type(exc).__name__, exc)
traced_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024  # KiB on Linux
print(json.dumps({{"growth": max(traced_peak, rss_growth), "traced_peak": traced_peak,
                  "rss_growth": rss_growth, "error": error}}))
"""


def measure(setup, call, good, bad):
    """Run ``call`` (the body of ``run(path)``) on ``good`` then ``bad`` in a child process;
    return its report: growth in bytes while loading ``bad``, and the error it raised (or None)."""
    code = _CHILD.format(
        setup=textwrap.dedent(setup), call=textwrap.indent(textwrap.dedent(call), "    ")
    )
    env = child_env()
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps({"good": good, "bad": bad})],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(bad),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------
# the cases: name -> function(folder) returning (setup, call, good path, bad path, expected error)

_WEIGHTS_SETUP = """
import numpy as np
from bnpy.models import Sequential
from bnpy.layers import Dense
model = Sequential([Dense(8, input_shape=(4,)), Dense(2)])
"""


def _saved(folder, kind):
    """A small model's weights ('weights') or whole-model ('model') file, and its arrays."""
    from bnpy.layers import Dense
    from bnpy.models import Sequential

    model = Sequential([Dense(8, input_shape=(4,)), Dense(2)])
    model.compile("sgd", "mse")
    path = os.path.join(folder, "good-{}.npz".format(kind))
    (model.save_weights if kind == "weights" else model.save)(path)
    with np.load(path, allow_pickle=False) as archive:
        return path, {key: archive[key] for key in archive.files}


def _kernel_name(arrays):
    return str(arrays["__weight_names__"][0])  # 'dense_N/kernel:0', shape (4, 8)


def _npz_case(folder, kind, bomb):
    """``kind`` file with one entry replaced or added by ``bomb(arrays)`` -> (name, Deflated)."""
    good, arrays = _saved(folder, kind)
    name, record = bomb(arrays)
    arrays.pop(name, None)
    bad = write_npz(os.path.join(folder, "bad-{}.npz".format(kind)), arrays, [(name, record)])
    if kind == "weights":
        return _WEIGHTS_SETUP, "model.load_weights(path)", good, bad
    return "from bnpy.models import load_model\n", "load_model(path)", good, bad


def _unused_entry(arrays):
    return "unused", Deflated(npy_header((BOMB_MIB * (1 << 18),), np.float32), BOMB_MIB)


def _kernel_declared_1gib(arrays):
    """The kernel's header says (4, 8) float32 (128 bytes), its zip entry 1 GiB."""
    return _kernel_name(arrays), Deflated(npy_header((4, 8), np.float32), BOMB_MIB)


def _kernel_of_1gib(arrays):
    """A consistent entry, header and size, of 1 GiB where the model's kernel is (4, 8)."""
    return _kernel_name(arrays), Deflated(
        npy_header((BOMB_MIB * (1 << 16), 4), np.float32), BOMB_MIB
    )


def _huge_config(folder):
    """A 5 KB model file whose config asks for Dense(8192) on 16384 inputs (512 MiB of kernel)
    while its weights are a small model's."""
    good, arrays = _saved(folder, "model")
    config = json.loads(str(arrays["__model_config__"]))
    first = config["config"]["layers"][0]["config"]
    first["units"], first["batch_input_shape"] = 8192, [None, 16384]
    arrays["__model_config__"] = np.array(json.dumps(config))
    bad = write_npz(os.path.join(folder, "bad-config.npz"), arrays)
    return "from bnpy.models import load_model\n", "load_model(path)", good, bad


def _mnist(folder, bomb):
    good = os.path.join(folder, "good", "mnist.npz")
    arrays = write_mnist_npz(good)
    name, record = bomb
    arrays.pop(name, None)
    os.makedirs(os.path.join(folder, "bad"))
    bad = write_npz(os.path.join(folder, "bad", "mnist.npz"), arrays, [bomb])
    return "from bnpy.datasets import mnist\n", "mnist.load_data(path=path)", good, bad


def _cifar(folder, which):
    writer, top, member, loader = {
        "cifar10": (
            write_cifar10,
            "cifar-10-batches-py",
            "data_batch_1",
            "cifar10.load_data(path=path)",
        ),
        "cifar100": (write_cifar100, "cifar-100-python", "train", "cifar100.load_data(path=path)"),
    }[which]
    good = make_tar_gz(
        writer(os.path.join(folder, "src"))["dir"], os.path.join(folder, "good.tar.gz")
    )
    bad = write_tar_gz_bomb(os.path.join(folder, "bad.tar.gz"), top + "/" + member, BOMB_MIB)
    return "from bnpy.datasets import cifar10, cifar100\n", loader, good, bad


def _fashion(folder):
    """t10k-images' IDX header says 1 image (800 bytes with the header); the .gz inflates to 1 GiB."""
    payloads, _ = fashion_payloads()
    for name in ("good", "bad"):
        os.makedirs(os.path.join(folder, name))
        for fname, data in payloads.items():
            with open(os.path.join(folder, name, fname), "wb") as f:
                f.write(data)
    header = bytes([0, 0, 8, 3]) + (1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    write_gzip(os.path.join(folder, "bad", "t10k-images-idx3-ubyte.gz"), Deflated(header, BOMB_MIB))
    return (
        "from bnpy.datasets import fashion_mnist\n",
        "fashion_mnist.load_data(path=path)",
        os.path.join(folder, "good"),
        os.path.join(folder, "bad"),
    )


CASES = {
    # name: (builder(folder) -> (setup, call, good, bad), expected error regex or None)
    "weights .npz with an unused 1 GiB entry": (
        lambda d: _npz_case(d, "weights", _unused_entry),
        None,
    ),
    "model .npz with an unused 1 GiB entry": (lambda d: _npz_case(d, "model", _unused_entry), None),
    "weights .npz, kernel header 128 B, zip entry 1 GiB": (
        lambda d: _npz_case(d, "weights", _kernel_declared_1gib),
        r"load_weights: .*bad-weights.npz is "
        r"not a readable bnpy weights file .*says it holds a float32 array of shape \(4, 8\) \(128 "
        r"bytes\) but the zip declares 1073741824 bytes",
    ),
    "weights .npz, a 1 GiB kernel where (4, 8) is expected": (
        lambda d: _npz_case(d, "weights", _kernel_of_1gib),
        r"load_weights: layer dense_\d+ weight 'kernel:0' has shape \(4, 8\), the file has shape "
        r"\(67108864, 4\)",
    ),
    "model .npz, a 1 GiB kernel where (4, 8) is expected": (
        lambda d: _npz_case(d, "model", _kernel_of_1gib),
        r"load_model: .*bad-model.npz: the config's layer dense_\d+ makes weight 'kernel:0' of shape "
        r"\(4, 8\) and dtype float32, the file holds shape \(67108864, 4\)",
    ),
    "model .npz asking for Dense(8192) on 16384 inputs": (
        _huge_config,
        r"load_model: .*bad-config.npz: the config's layer dense_\d+ makes weight "
        r"'kernel:0' of shape \(16384, 8192\) and dtype float32, the file holds shape \(4, 8\) and "
        r"dtype float32; nothing was built",
    ),
    "mnist.npz with an unused 1 GiB entry": (
        lambda d: _mnist(d, ("unused", Deflated(npy_header((1 << 30,), np.uint8), BOMB_MIB))),
        None,
    ),
    "mnist.npz, x_test header (3, 28, 28), zip entry 1 GiB": (
        lambda d: _mnist(d, ("x_test", Deflated(npy_header((3, 28, 28), np.uint8), BOMB_MIB))),
        r"mnist.load_data: .*mnist.npz is not a readable MNIST .npz file .*the zip declares",
    ),
    "mnist.npz, x_train of 2,097,152 images (1.6 GB)": (  # 2**21 * 784 bytes = 1568 MiB
        lambda d: _mnist(d, ("x_train", Deflated(npy_header((1 << 21, 28, 28), np.uint8), 1568))),
        r"x_train holds 2097152 images; MNIST has 60000",
    ),
    "cifar-10 tar.gz whose data_batch_1 is 1 GiB": (
        lambda d: _cifar(d, "cifar10"),
        r"cifar10.load_data: cifar-10-batches-py/data_batch_1 in "
        r".*bad.tar.gz is 1073741824 bytes; an official data_batch_1 is at most 33554432",
    ),
    "cifar-100 tar.gz whose train is 1 GiB": (
        lambda d: _cifar(d, "cifar100"),
        r"cifar100.load_data: cifar-100-python/train in .*bad.tar.gz "
        r"is 1073741824 bytes; an official train is at most 167772160",
    ),
    "fashion-mnist .gz, header 800 B, inflates to 1 GiB": (
        _fashion,
        r"t10k-images-idx3-ubyte.gz should hold 784 bytes of data for shape \(1, 28, 28\) "
        r"but holds 784 \(trailing bytes\)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bomb_costs_little_memory_and_fails_clearly_or_loads(tmp_path, case):
    build, expected_error = CASES[case]
    report = measure(*build(str(tmp_path)))
    if expected_error is None:
        assert report["error"] is None, report["error"]
    else:
        assert report["error"] is not None, "the bad file loaded"
        assert any(report["error"].startswith(kind) for kind in ("ValueError", "DataFileError")), (
            report
        )
        assert re.search(expected_error, report["error"]), report["error"]
    assert report["growth"] < MEMORY_LIMIT, "{}: {:.0f} MB".format(case, report["growth"] / 1e6)


if __name__ == "__main__":
    import tempfile

    for case, (build, _) in CASES.items():
        with tempfile.TemporaryDirectory() as folder:
            report = measure(*build(folder))
        print(
            "{:60s} {:8.1f} MB  {}".format(
                case, report["growth"] / 1e6, (report["error"] or "loaded")[:100]
            )
        )
