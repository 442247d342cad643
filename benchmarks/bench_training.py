"""One training step of the article's network: bnpy against PyTorch and tf-keras, in the same run.

The network is the article's LeNet-5 variant with all four commented BatchNormalization lines
enabled (355,192 parameters):

    Conv2D 96 11x11 same -> BN -> MaxPool 2x2 -> BN -> tanh -> Conv2D 120 1x1 valid -> BN ->
    Flatten -> Dense 10 -> BN -> relu -> Dense 10 -> softmax, categorical cross-entropy, Adadelta

on a batch of 32 random 32x32x3 float32 images, at 1 and 2 threads. Contestants:

  * bnpy.ops  - the step composed from bnpy.ops calls (conv, pooling, BN, matmul for the dense
                layers, softmax + cross-entropy and Adadelta in NumPy): what the framework can reach;
  * bnpy model - ``Sequential.train_on_batch`` of the real model; with more than one thread also a
                row with NumPy's BLAS pool uncapped (the model caps it at one thread while bnpy's
                OpenMP kernels run, bnpy._threads);
  * torch      - the same network in PyTorch, NCHW and channels-last (torch.set_num_threads);
  * tf-keras   - the same network in tf-keras (Keras 2 on TensorFlow) with Keras 2.0's settings
                (Adadelta lr=1.0, rho=0.95, epsilon=1e-8; BatchNormalization fused=False, as Keras
                2.0 had no fused kernel), when tensorflow and tf_keras import. TensorFlow fixes its
                thread pools when it starts, so it runs only when a single --threads value is given.

Timing: interleaved rounds (every contestant in turn, A, B, C, ...), each contestant's fastest of
--calls calls per round after one untimed call; printed: the median over the rounds of those
fastest times, and the median [quartiles] of the per-round ratios bnpy / torch's best layout of the
same round (and / tf-keras). Then a per-layer breakdown of the bnpy model's step (each layer's
forward and backward, ms and share of the step; "rest" is the loss, the optimizer and the moving
statistics). With --memory it also runs a one-epoch fit of the bnpy model on 50,000 random images
in a subprocess and prints its peak resident memory (getrusage).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_training.py [--memory]
      [--threads 1] [--rounds 9] [--calls 3] [--clock cpu]
Timings on a shared machine are noisy: compare the ratios of one run, not absolute times.
"""

import argparse
import os
import subprocess
import sys
import time

import benchtools  # noqa: E402  (benchmarks/, the script's own folder)
import numpy as np

import bnpy
import bnpy.ops as ops

BATCH, EPOCH_IMAGES = 32, 50_000
EPS_BN, MOMENTUM = 1e-3, 0.99  # Keras 2.0 BatchNormalization defaults
RHO, EPS_ADADELTA, LR = 0.95, 1e-8, 1.0  # Keras 2.0 Adadelta defaults


CLOCK = time.perf_counter


# ---- batch normalization: bnpy.ops ----------------------------------------------------------------

bn_forward = ops.batch_norm_forward
bn_backward = ops.batch_norm_backward


def update_moving(moving_mean, moving_var, mean, var):
    if hasattr(ops, "update_moving_stats"):
        ops.update_moving_stats(moving_mean, moving_var, mean, var, MOMENTUM)
    else:
        moving_mean *= MOMENTUM
        moving_mean += (1 - MOMENTUM) * mean
        moving_var *= MOMENTUM
        moving_var += (1 - MOMENTUM) * var


# ---- the network composed from bnpy.ops ----------------------------------------------------------------


class OpsNetwork:
    """The article's network as explicit forward/backward calls on bnpy.ops (channels-last)."""

    def __init__(self, rng):
        def glorot(shape, fan_in, fan_out):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-limit, limit, shape).astype(np.float32)

        f32 = np.float32
        self.params = {
            "K1": glorot((11, 11, 3, 96), 11 * 11 * 3, 11 * 11 * 96),
            "b1": np.zeros(96, f32),
            "g1": np.ones(96, f32),
            "be1": np.zeros(96, f32),
            "g2": np.ones(96, f32),
            "be2": np.zeros(96, f32),
            "K2": glorot((1, 1, 96, 120), 96, 120),
            "b2": np.zeros(120, f32),
            "g3": np.ones(120, f32),
            "be3": np.zeros(120, f32),
            "W1": glorot((16 * 16 * 120, 10), 16 * 16 * 120, 10),
            "d1": np.zeros(10, f32),
            "g4": np.ones(10, f32),
            "be4": np.zeros(10, f32),
            "W2": glorot((10, 10), 10, 10),
            "d2": np.zeros(10, f32),
        }
        self.moving = {
            k: (np.zeros(c, f32), np.ones(c, f32))
            for k, c in [("bn1", 96), ("bn2", 96), ("bn3", 120), ("bn4", 10)]
        }
        self.accumulators = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.delta_accumulators = {k: np.zeros_like(v) for k, v in self.params.items()}

    def count_params(self):
        return sum(v.size for v in self.params.values()) + sum(
            2 * m.size for m, _ in self.moving.values()
        )

    def train_step(self, x, y_onehot):
        p = self.params
        # forward
        h1, conv1 = ops.conv2d_forward(x, p["K1"], p["b1"], 1, "same")
        h2, m1, v1 = bn_forward(h1, p["g1"], p["be1"])
        h3, pool = ops.max_pool2d_forward(h2)
        h4, m2, v2 = bn_forward(h3, p["g2"], p["be2"])
        h5 = np.tanh(h4)
        h6, conv2 = ops.conv2d_forward(h5, p["K2"], p["b2"], 1, "valid")
        h7, m3, v3 = bn_forward(h6, p["g3"], p["be3"])
        flat = h7.reshape(h7.shape[0], -1)
        h8 = flat @ p["W1"] + p["d1"]
        h9, m4, v4 = bn_forward(h8, p["g4"], p["be4"])
        h10 = np.maximum(h9, 0)
        logits = h10 @ p["W2"] + p["d2"]
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -np.mean(np.sum(y_onehot * np.log(np.clip(probs, 1e-7, 1 - 1e-7)), axis=1))
        for key, (mean, var) in zip(
            ["bn1", "bn2", "bn3", "bn4"], [(m1, v1), (m2, v2), (m3, v3), (m4, v4)]
        ):
            update_moving(*self.moving[key], mean, var)
        # backward
        g = {}
        d_logits = (probs - y_onehot) / x.shape[0]
        g["W2"], g["d2"] = h10.T @ d_logits, d_logits.sum(axis=0)
        d_h10 = d_logits @ p["W2"].T
        d_h9 = d_h10 * (h9 > 0)
        d_h8, g["g4"], g["be4"] = bn_backward(d_h9, h8, p["g4"], m4, v4)
        g["W1"], g["d1"] = flat.T @ d_h8, d_h8.sum(axis=0)
        d_h7 = (d_h8 @ p["W1"].T).reshape(h7.shape)
        d_h6, g["g3"], g["be3"] = bn_backward(d_h7, h6, p["g3"], m3, v3)
        d_h5, g["K2"], g["b2"] = ops.conv2d_backward(d_h6, conv2)
        d_h4 = d_h5 * (1 - h5 * h5)
        d_h3, g["g2"], g["be2"] = bn_backward(d_h4, h3, p["g2"], m2, v2)
        d_h2 = ops.max_pool2d_backward(d_h3, pool)
        d_h1, g["g1"], g["be1"] = bn_backward(d_h2, h1, p["g1"], m1, v1)
        _, g["K1"], g["b1"] = ops.conv2d_backward(d_h1, conv1, need_dx=False)
        # Adadelta (Keras 2.0): a = rho a + (1-rho) g²; u = g sqrt(d + eps)/sqrt(a + eps);
        # p -= lr u; d = rho d + (1-rho) u²
        for key, value in p.items():
            grad, acc, delta = g[key], self.accumulators[key], self.delta_accumulators[key]
            acc *= RHO
            acc += (1 - RHO) * grad * grad
            update = grad * np.sqrt(delta + EPS_ADADELTA) / np.sqrt(acc + EPS_ADADELTA)
            value -= LR * update
            delta *= RHO
            delta += (1 - RHO) * update * update
        return loss


# ---- the real model (branch `framework`) ---------------------------------------------------------------


def build_model():
    """The article's build_LeNet5 with all four comments enabled (bnpy.experiments' "all-comments"
    group, 355,192 parameters), compiled as the article does."""
    from bnpy.experiments.article import build_model as article_model

    model = article_model("all-comments", (32, 32, 3))
    model.compile(loss="categorical_crossentropy", optimizer="adadelta", metrics=["accuracy"])
    return model


# ---- PyTorch ----------------------------------------------------------------------------------------------


def torch_step_factory(channels_last):
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 96, 11, padding=5),
        nn.BatchNorm2d(96, eps=EPS_BN, momentum=1 - MOMENTUM),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(96, eps=EPS_BN, momentum=1 - MOMENTUM),
        nn.Tanh(),
        nn.Conv2d(96, 120, 1),
        nn.BatchNorm2d(120, eps=EPS_BN, momentum=1 - MOMENTUM),
        nn.Flatten(),
        nn.Linear(16 * 16 * 120, 10),
        nn.BatchNorm1d(10, eps=EPS_BN, momentum=1 - MOMENTUM),
        nn.ReLU(),
        nn.Linear(10, 10),
    )
    optimizer = torch.optim.Adadelta(model.parameters(), lr=LR, rho=RHO, eps=EPS_ADADELTA)
    x = torch.randn(BATCH, 3, 32, 32)
    labels = torch.randint(0, 10, (BATCH,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()

    return step


def tf_keras_step_factory(threads):
    """A train_on_batch step of the network in tf-keras with Keras 2.0's settings, or None when
    tensorflow or tf_keras is not installed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf_keras as keras
    except ImportError:
        return None, None
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    layers = keras.layers
    keras.utils.set_random_seed(0)

    def bn():
        return layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS_BN, fused=False)

    model = keras.Sequential(
        [
            layers.Conv2D(96, (11, 11), padding="same", input_shape=(32, 32, 3)),
            bn(),
            layers.MaxPooling2D((2, 2)),
            bn(),
            layers.Activation("tanh"),
            layers.Conv2D(120, (1, 1), padding="valid"),
            bn(),
            layers.Flatten(),
            layers.Dense(10),
            bn(),
            layers.Activation("relu"),
            layers.Dense(10),
            layers.Activation("softmax"),
        ]
    )
    optimizer = keras.optimizers.Adadelta(learning_rate=LR, rho=RHO, epsilon=EPS_ADADELTA)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, BATCH)]
    return (lambda: model.train_on_batch(x, y)), "tensorflow {}, tf_keras {}".format(
        tf.__version__, keras.__version__
    )


# ---- where the bnpy model's step goes --------------------------------------------------------------


def layer_breakdown(model, x, y, steps):
    """Median ms per step of each layer's forward and backward in the model's train_on_batch, and
    of the whole step, measured by wrapping the layers' methods for `steps` steps."""
    spent = {}

    def timed(key, method):
        def run(*args, **kwargs):
            start = CLOCK()
            try:
                return method(*args, **kwargs)
            finally:
                spent[key] = spent.get(key, 0.0) + CLOCK() - start

        return run

    for layer in model.layers:
        layer.forward = timed((layer.name, "forward"), layer.forward)
        layer.backward = timed((layer.name, "backward"), layer.backward)
    samples = {}
    try:
        model.train_on_batch(x, y)
        for _ in range(steps):
            spent.clear()
            start = CLOCK()
            model.train_on_batch(x, y)
            spent[("step", "")] = CLOCK() - start
            for key, value in spent.items():
                samples.setdefault(key, []).append(value)
    finally:
        for layer in model.layers:
            del layer.forward, layer.backward  # the class's methods again
    return {key: 1e3 * float(np.median(v)) for key, v in samples.items()}


def print_breakdown(model, breakdown):
    step = breakdown[("step", "")]
    print("\nbnpy model, where a step goes (median of the steps; share of the median step):")
    print(
        "  {:<44} {:>9} {:>7} {:>9} {:>7}".format("layer", "forward", "share", "backward", "share")
    )
    total = 0.0
    for layer in model.layers:
        fwd = breakdown.get((layer.name, "forward"), 0.0)
        bwd = breakdown.get((layer.name, "backward"), 0.0)
        total += fwd + bwd
        print(
            "  {:<44} {:>7.2f}ms {:>6.1f}% {:>7.2f}ms {:>6.1f}%".format(
                "{} ({})".format(layer.name, type(layer).__name__),
                fwd,
                100 * fwd / step,
                bwd,
                100 * bwd / step,
            )
        )
    rest = step - total
    print(
        "  {:<44} {:>7.2f}ms {:>6.1f}%".format(
            "rest (loss, optimizer, ...)", rest, 100 * rest / step
        )
    )
    print("  {:<44} {:>7.2f}ms".format("step", step))


# ---- peak memory of a one-epoch fit -------------------------------------------------------------------------

MEMORY_CHILD = r"""
import resource, sys, time, numpy as np
sys.path[:0] = {path!r}
import bench_training as bt
import bnpy
from threadpoolctl import threadpool_limits
bnpy.set_num_threads({threads})
threadpool_limits({threads})
model = bt.build_model()
rng = np.random.default_rng(0)
x = rng.random((50000, 32, 32, 3), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 50000)]
start = time.perf_counter()
model.fit(x, y, batch_size=32, epochs=1, verbose=0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - start)
"""


def peak_memory_of_fit(threads=1):
    """(peak RSS in bytes, seconds) of a one-epoch fit of the model on 50,000 random images, run in
    a fresh interpreter so nothing else counts toward its peak."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = MEMORY_CHILD.format(path=[here] + sys.path[:1], threads=int(threads))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    maxrss_kib, seconds = out.stdout.split()[-2:]
    return int(maxrss_kib) * 1024, float(seconds)  # ru_maxrss is in KiB on Linux


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--calls", type=int, default=3, help="timed calls per round (fastest counts)"
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time (default) or process CPU time (load-robust; 1 thread only)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="also measure a one-epoch fit's peak RSS"
    )
    parser.add_argument(
        "--breakdown-steps", type=int, default=15, help="steps for the per-layer breakdown"
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = benchtools.clock_of(args)
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        sys.exit("bench_training needs threadpoolctl (to set and report the BLAS threads)")
    try:
        import torch
    except ImportError:
        torch = None

    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, BATCH)]
    network = OpsNetwork(rng)
    model = build_model()
    tf_step, tf_version = None, "not run (give a single --threads value)"
    if len(args.threads) == 1:
        tf_step, tf_version = tf_keras_step_factory(args.threads[0])
        tf_version = tf_version or "absent"
    blas = [
        (i["internal_api"], i.get("architecture"), i.get("version"))
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    print(
        "bnpy {} (OpenMP {}), NumPy {}, BLAS {}, torch {}, tf-keras: {}".format(
            bnpy.__version__,
            bool(bnpy._core.HAVE_OPENMP),
            np.__version__,
            blas,
            torch.__version__ if torch else "absent",
            tf_version,
        )
    )
    print("parameters: {} (Keras: 355,192); clock: {}".format(network.count_params(), args.clock))
    steps_per_epoch = -(-EPOCH_IMAGES // BATCH)
    print(
        "\n{:>7} {:<26} {:>9} {:>22} {:>22} {:>9}".format(
            "threads",
            "contestant",
            "ms/step",
            "/ torch best [q1-q3]",
            "/ tf-keras [q1-q3]",
            "s/epoch",
        )
    )
    for threads in args.threads:
        bnpy.set_num_threads(threads)
        steps = {}
        with threadpool_limits(threads):
            if torch is not None:
                torch.set_num_threads(threads)
                steps["torch NCHW"] = torch_step_factory(False)
                steps["torch channels_last"] = torch_step_factory(True)
            if tf_step is not None:
                steps["tf-keras"] = tf_step
            steps["bnpy.ops"] = lambda: network.train_step(x, y)
            steps["bnpy model"] = lambda: model.train_on_batch(x, y)
            if threads > 1:  # what the model does without its BLAS cap (bnpy._threads)

                def model_blas_uncapped():
                    saved = os.environ.get("BNPY_FIT_BLAS_THREADS")
                    os.environ["BNPY_FIT_BLAS_THREADS"] = "0"
                    try:
                        model.train_on_batch(x, y)
                    finally:
                        if saved is None:
                            del os.environ["BNPY_FIT_BLAS_THREADS"]
                        else:
                            os.environ["BNPY_FIT_BLAS_THREADS"] = saved

                steps["bnpy model, BLAS uncapped"] = model_blas_uncapped
            times = benchtools.interleaved_rounds(steps, args.rounds, args.calls, clock=CLOCK)
            torch_names = [k for k in times if k.startswith("torch")]
            if torch_names:  # per round, torch's faster layout
                times["torch best"] = list(np.min([times[k] for k in torch_names], axis=0))
            for name in steps:
                ms = 1e3 * float(np.median(times[name]))
                cells = []
                for ref_name in ["torch best", "tf-keras"]:
                    if ref_name in times and name != ref_name:
                        cells.append(
                            "{:.2f}x [{:.2f}-{:.2f}]".format(
                                *benchtools.ratio_summary(times, name, ref_name)
                            )
                        )
                    else:
                        cells.append("-")
                print(
                    "{:>7} {:<26} {:>9.1f} {:>22} {:>22} {:>9.0f}".format(
                        threads, name, ms, cells[0], cells[1], ms * steps_per_epoch / 1e3
                    )
                )
            print_breakdown(model, layer_breakdown(model, x, y, args.breakdown_steps))
    print(
        "\nms/step: median over {} rounds of each contestant's fastest of {} calls; ratios: median "
        "[quartiles] of per-round ratios.".format(args.rounds, args.calls)
    )
    if args.memory:
        threads = min(args.threads)
        peak, seconds = peak_memory_of_fit(threads)
        print(
            "\none-epoch fit on 50,000 random images ({} thread(s)): peak resident memory {:.2f} GiB "
            "(target <= 2 GiB), {:.0f} s".format(threads, peak / 2**30, seconds)
        )


if __name__ == "__main__":
    main()
