"""Valid calls of the batch-norm functions of bnpy._core and bnpy.ops for the fuzz campaign
(cases.py mutates them): the forward, inference and backward passes, the moving statistics,
Batch Renormalization, ghost batches and the synchronized-BN phases, one builder per function."""

import numpy as np

from bnpy import _core, ops

from .calls import Case, out_choice, random_dtype, random_shape, random_values

# ---- valid calls, one builder per function ---------------------------------------------------------


def _bn_common(rng):
    dtype = random_dtype(rng)
    shape = random_shape(rng, low=1 if rng.random() < 0.8 else 0)
    axis = int(rng.integers(-len(shape), len(shape)))
    c = shape[axis]
    x = random_values(rng, shape, dtype)
    vec = lambda: random_values(rng, (c,), dtype)  # noqa: E731
    var = lambda: np.abs(random_values(rng, (c,), dtype))  # noqa: E731
    eps = float(rng.choice([1e-3, 1e-5, 0.0, 1.0]))
    return dtype, shape, axis, c, x, vec, var, eps


def build_bn_forward(rng, api):
    dtype, shape, axis, c, x, vec, var, eps = _bn_common(rng)
    gamma = vec() if rng.random() < 0.8 else None
    beta = vec() if rng.random() < 0.8 else None
    out = out_choice(rng, x, [x])
    if api == "core":
        return Case(
            "_core.batch_norm_forward",
            _core.batch_norm_forward,
            [x, gamma, beta, axis, eps, out],
            outputs=[5],
        )
    return Case(
        "ops.batch_norm_forward",
        ops.batch_norm_forward,
        [x, gamma, beta],
        dict(axis=axis, epsilon=eps, out=out),
        outputs=["out"],
        core=False,
    )


def build_bn_inference(rng, api):
    dtype, shape, axis, c, x, vec, var, eps = _bn_common(rng)
    gamma, beta = (vec() if rng.random() < 0.8 else None), (vec() if rng.random() < 0.8 else None)
    mean, variance = vec(), var()
    out = out_choice(rng, x, [x])
    if api == "core":
        return Case(
            "_core.batch_norm_inference",
            _core.batch_norm_inference,
            [x, gamma, beta, mean, variance, axis, eps, out],
            outputs=[7],
        )
    return Case(
        "ops.batch_norm_inference",
        ops.batch_norm_inference,
        [x, gamma, beta, mean, variance],
        dict(axis=axis, epsilon=eps, out=out),
        outputs=["out"],
        core=False,
    )


def build_bn_backward(rng, api, inference=False):
    dtype, shape, axis, c, x, vec, var, eps = _bn_common(rng)
    dy = random_values(rng, shape, dtype)
    gamma = vec() if rng.random() < 0.8 else None
    mean, variance = vec(), var()
    out = out_choice(rng, x, [x, dy])
    name = "batch_norm_inference_backward" if inference else "batch_norm_backward"
    if api == "core":
        return Case(
            "_core." + name,
            getattr(_core, name),
            [dy, x, gamma, mean, variance, axis, eps, out],
            outputs=[7],
        )
    return Case(
        "ops." + name,
        getattr(ops, name),
        [dy, x, gamma, mean, variance],
        dict(axis=axis, epsilon=eps, out=out),
        outputs=["out"],
        core=False,
    )


def build_update_moving_stats(rng, api):
    dtype = random_dtype(rng)
    c = int(rng.integers(0, 6))
    mm, mv = random_values(rng, (c,), dtype), np.abs(random_values(rng, (c,), dtype))
    mean, var = random_values(rng, (c,), dtype), np.abs(random_values(rng, (c,), dtype))
    if rng.random() < 0.1:  # the batch statistics in the very moving arrays (allowed)
        mean = mm
    momentum = float(rng.choice([0.0, 0.5, 0.99, 1.0]))
    count = [None, 1, 2, 100][rng.integers(4)]
    if api == "core":
        return Case(
            "_core.update_moving_stats",
            _core.update_moving_stats,
            [mm, mv, mean, var, momentum, count],
            outputs=[0, 1],
        )
    return Case(
        "ops.update_moving_stats",
        ops.update_moving_stats,
        [mm, mv, mean, var],
        dict(momentum=momentum, count=count),
        outputs=[0, 1],
        core=False,
    )


def build_renorm_forward(rng, api):
    dtype, shape, axis, c, x, vec, var, eps = _bn_common(rng)
    gamma = vec() if rng.random() < 0.8 else None
    beta = vec() if rng.random() < 0.8 else None
    renorm_mean, renorm_stddev = vec(), var()
    rmin = float(rng.choice([0.0, 0.5, 1.0]))
    rmax = float(rng.choice([1.0, 2.0, float("inf")]))
    dmax = float(rng.choice([0.0, 1.0, float("inf")]))
    out = out_choice(rng, x, [x])
    if api == "core":
        return Case(
            "_core.batch_renorm_forward",
            _core.batch_renorm_forward,
            [x, gamma, beta, renorm_mean, renorm_stddev, axis, eps, rmin, rmax, dmax, out],
            outputs=[10],
        )
    return Case(
        "ops.batch_renorm_forward",
        ops.batch_renorm_forward,
        [x, gamma, beta, renorm_mean, renorm_stddev],
        dict(axis=axis, epsilon=eps, rmin=rmin, rmax=rmax, dmax=dmax, out=out),
        outputs=["out"],
        core=False,
    )


def build_renorm_backward(rng, api):
    dtype, shape, axis, c, x, vec, var, eps = _bn_common(rng)
    dy = random_values(rng, shape, dtype)
    gamma = vec() if rng.random() < 0.8 else None
    mean, variance, r, d = vec(), var(), var(), vec()
    out = out_choice(rng, x, [x, dy])
    if api == "core":
        return Case(
            "_core.batch_renorm_backward",
            _core.batch_renorm_backward,
            [dy, x, gamma, mean, variance, r, d, axis, eps, out],
            outputs=[9],
        )
    return Case(
        "ops.batch_renorm_backward",
        ops.batch_renorm_backward,
        [dy, x, gamma, mean, variance, r, d],
        dict(axis=axis, epsilon=eps, out=out),
        outputs=["out"],
        core=False,
    )


def build_ghost(rng, api, backward=False):
    dtype = random_dtype(rng)
    v = int(rng.integers(1, 4))
    shape = (v * int(rng.integers(1, 4)),) + random_shape(rng, rank=int(rng.integers(1, 4)), low=1)
    axis = int(rng.choice([a for a in range(-len(shape), len(shape)) if a % len(shape)]))
    c, groups = shape[axis], shape[0] // v
    x = random_values(rng, shape, dtype)
    gamma = random_values(rng, (c,), dtype) if rng.random() < 0.8 else None
    eps = float(rng.choice([1e-3, 0.0, 1.0]))
    name = "ghost_batch_norm_backward" if backward else "ghost_batch_norm_forward"
    if backward:
        dy = random_values(rng, shape, dtype)
        mean, var = (
            random_values(rng, (groups, c), dtype),
            np.abs(random_values(rng, (groups, c), dtype)),
        )
        head, out = [dy, x, gamma, mean, var, v], out_choice(rng, x, [x, dy])
    else:
        beta = random_values(rng, (c,), dtype) if rng.random() < 0.8 else None
        head, out = [x, gamma, beta, v], out_choice(rng, x, [x])
    if api == "core":
        return Case(
            "_core." + name, getattr(_core, name), head + [axis, eps, out], outputs=[len(head) + 2]
        )
    return Case(
        "ops." + name,
        getattr(ops, name),
        head,
        dict(axis=axis, epsilon=eps, out=out),
        outputs=["out"],
        core=False,
    )


def build_bn_sync(rng, api, name):
    """The synchronized-BN phases (bn_sync.c): the per-channel statistics and sums are float64
    whatever x's dtype."""
    dtype, shape, axis, c, x, vec, var, eps = _bn_common(rng)
    m = x.size // c if c else 0
    vec64 = lambda: random_values(rng, (c,), "float64")  # noqa: E731
    gamma = vec() if rng.random() < 0.8 else None
    beta = vec() if rng.random() < 0.8 else None
    if name == "batch_norm_local_stats":
        args, kwargs, outputs = [x], dict(axis=axis), []
    elif name == "batch_norm_merge_stats":
        parts = int(rng.integers(0, 4))
        counts = rng.integers(0, 5, parts).astype(np.float64)
        args = [counts, random_values(rng, (parts, c), "float64")]
        args.append(np.abs(random_values(rng, (parts, c), "float64")))
        kwargs, outputs = {}, []
    elif name == "batch_norm_normalize":
        out = out_choice(rng, x, [x])
        args = [x, gamma, beta, vec64(), np.abs(vec64())]
        kwargs, outputs = dict(axis=axis, epsilon=eps, out=out), ["out"]
    elif name == "batch_norm_grad_sums":
        args, kwargs, outputs = [random_values(rng, shape, dtype), x, vec64()], dict(axis=axis), []
    else:  # batch_norm_backward_apply
        dy = random_values(rng, shape, dtype)
        out = out_choice(rng, x, [x, dy])
        count = m + int(rng.integers(0, 3) * m)
        args = [dy, x, gamma, vec64(), np.abs(vec64()), vec64(), vec64(), count]
        kwargs, outputs = dict(axis=axis, epsilon=eps, out=out), ["out"]
    if api == "ops":
        return Case("ops." + name, getattr(ops, name), args, kwargs, outputs=outputs, core=False)
    # the core functions take the keywords positionally, in this order, out last
    core_args = args + [kwargs[k] for k in ("axis", "epsilon", "out") if k in kwargs]
    positions = [len(core_args) - 1] if "out" in kwargs else []
    return Case("_core." + name, getattr(_core, name), core_args, outputs=positions)
