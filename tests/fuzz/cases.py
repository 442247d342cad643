"""Random calls of every function of bnpy._core and bnpy.ops, and the contract each must keep.

One *case* is one call, made from a seed by :func:`make_case`: a function, its arguments, and which
arguments it may write (``out=``, the in-place arrays). A case starts from a valid call (random
geometry, shapes, dtypes float32/float64, values with NaN/Inf/denormals sprinkled in) and then,
usually, gets 1-3 mutations: an argument replaced by junk (a non-array object, a wrong dtype --
ints, float16, complex, object, str, byte-swapped --, a wrong rank or size, rank 0 or 32, an empty
or 0-size axis, a huge int, a huge zero-stride view whose size overflows npy_intp products), an
``out=`` that aliases an input, is read-only, non-contiguous or unaligned, or an input re-laid-out
(Fortran order, negative strides, unaligned, byte-swapped, read-only: still valid).

:func:`run_case` checks the contract of the C boundary (issue 6):

- a rejected call raises TypeError or ValueError (MemoryError only for a case marked ``huge``,
  whose honest result would not fit in memory) and writes nothing: every array reachable from the
  arguments keeps its bytes;
- an accepted call writes only into its declared outputs;
- an accepted call of a ``_core`` function whose inputs were re-laid-out (strides, alignment, byte
  order) gives bitwise the result of the same call on C-contiguous copies (the glue copies to the
  contiguous fast path, and the kernels' results do not depend on the layout).

A crash, a sanitizer report or a hang is caught by the driver (fuzz_core.py), not here.
"""

import numpy as np

import bnpy
from bnpy import _core, ops

ACCEPTED_ERRORS = (TypeError, ValueError)

#: Known bugs the campaign tolerates (counted as "known:..."), each with a strict xfail test in
#: tests/test_fuzz_core.py that starts passing -- and so fails -- once the bug is fixed:
#: bnpy.ops' convolution and pooling pass an int beyond ssize_t (strides, pool_size, padding) on
#: to bnpy._core, whose argument parsing raises OverflowError instead of ValueError; so does
#: update_moving_stats for such a count (py_batchnorm.c converts it with PyExc_OverflowError).
# Public bnpy.ops functions must turn every out-of-range int into ValueError; only the private
# bnpy._core functions may let CPython's argument parsing raise OverflowError.
KNOWN_OVERFLOW_IN = ()

GOOD_DTYPES = (np.float32, np.float64)
BAD_DTYPES = (
    "int8",
    "uint8",
    "int32",
    "int64",
    "bool",
    "float16",
    "complex64",
    "complex128",
    "object",
    "U3",
    "S2",
    "datetime64[s]",
    ">f4",
    ">f8",
    np.longdouble,
    "V8",
)
JUNK_SCALARS = (
    None,
    0,
    1,
    -1,
    2,
    7,
    2**31,
    2**62,
    2**63 - 1,
    -(2**63),
    2**70,
    -(2**70),
    0.5,
    float("nan"),
    float("inf"),
    -float("inf"),
    1e-320,
    True,
    False,
    "x",
    "",
    b"ab",
    "channels_last",
    "constant",
    "valid",
    "same",
    (),
    [],
    [[1.0, 2.0]],
    (1, 2),
    (3, 3, 3, 3),
    ((0, 0), (0, 0)),
    {},
    object(),
    np.float32(1.5),
    np.int64(-3),
    np.bool_(True),
    slice(None),
    Ellipsis,
    1j,
    range(3),
)
SPECIAL_VALUES = (np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1e-45, 1e-310, 1e38, -1e38, 1e300)


# ---- random building blocks ----------------------------------------------------------------------


def _values(rng, shape, dtype):
    """Normal values with, sometimes, NaN/Inf/denormal/huge values sprinkled in."""
    size = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    vals = rng.standard_normal(size) * (10.0 ** rng.integers(-3, 4)) + rng.choice([0.0, 0.0, 1e4])
    if size and rng.random() < 0.25:
        k = int(rng.integers(1, min(size, 4) + 1))
        vals[rng.integers(0, size, k)] = rng.choice(SPECIAL_VALUES, k)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return vals.astype(dtype).reshape(shape)


def _relayout(rng, a, kind=None):
    """The same values in another memory layout (a valid input of any strides)."""
    kinds = ("fortran", "negative", "strided", "unaligned", "swapped", "readonly")
    kind = kind or kinds[rng.integers(len(kinds))]
    if a.dtype.kind not in "biufc":  # object, str, void, datetime: only copied
        return a.copy()
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "negative" and a.ndim:  # a view with negative strides of a reversed copy
        return np.flip(np.ascontiguousarray(np.flip(a)))
    if kind == "strided" and a.ndim:
        axis = int(rng.integers(a.ndim))
        shape = list(a.shape)
        shape[axis] *= 2
        big = np.zeros(shape, a.dtype)
        index = [slice(None)] * a.ndim
        index[axis] = slice(None, None, 2)
        big[tuple(index)] = a
        return big[tuple(index)]
    if kind == "unaligned" and a.dtype.itemsize > 1:
        buf = np.zeros(a.nbytes + 1, np.uint8)
        out = buf[1:].view(a.dtype).reshape(a.shape) if a.size else a.copy()
        out[...] = a
        return out
    if kind == "swapped":
        return a.astype(a.dtype.newbyteorder())
    if kind == "readonly":
        out = a.copy()
        out.flags.writeable = False
        return out
    return a.copy()


def _huge_view(rng, rank=None):
    """A zero-stride float view whose logical size (2**55 to 2**59 bytes) no machine can hold: a
    copy fails at once, and products of its dimensions overflow 32-bit and some 64-bit sums."""
    rank = rank or int(rng.integers(2, 5))
    total_bits = int(rng.integers(52, 57))
    dims = [1] * rank
    for _i in range(total_bits):  # spread the bits over the dimensions
        dims[int(rng.integers(rank))] *= 2
    base = np.zeros(1, GOOD_DTYPES[rng.integers(2)])
    return np.lib.stride_tricks.as_strided(base, shape=dims, strides=(0,) * rank, writeable=False)


def _junk_array(rng, like=None):
    """An array that is wrong in one way: dtype, rank, size, or empty."""
    choice = rng.integers(7)
    if not isinstance(like, np.ndarray) or like.size >= 2**20:
        like = None
    shape = like.shape if like is not None else (2, 3)
    if choice == 0:  # wrong dtype, right shape
        dt = np.dtype(BAD_DTYPES[rng.integers(len(BAD_DTYPES))])
        if dt.kind == "O":
            a = np.empty(shape, object)
            a[...] = 1.5
            return a
        if dt.kind == "V":
            return np.zeros(shape, dt)
        with np.errstate(all="ignore"):
            return np.ones(shape).astype(dt)
    if choice == 1:  # rank 0
        return np.array(1.0, GOOD_DTYPES[rng.integers(2)])
    if choice == 2:  # rank 32 (numpy allows 64)
        dims = [1] * 32
        dims[rng.integers(32)] = 2
        return np.ones(dims, GOOD_DTYPES[rng.integers(2)])
    if choice == 3:  # a 0-size axis
        s = list(shape) or [1]
        s[rng.integers(len(s))] = 0
        return np.zeros(
            s,
            like.dtype
            if isinstance(like, np.ndarray) and like.dtype in GOOD_DTYPES
            else np.float64,
        )
    if choice == 4:  # one more or one fewer dimension
        s = list(shape) + [2] if rng.random() < 0.5 or not shape else list(shape)[1:]
        return np.ones(
            s, like.dtype if isinstance(like, np.ndarray) and like.dtype.kind == "f" else np.float32
        )
    if choice == 5:  # a size off by one
        s = list(shape) or [1]
        i = rng.integers(len(s))
        s[i] = max(0, s[i] + int(rng.choice([-1, 1, 5])))
        return np.ones(
            s, like.dtype if isinstance(like, np.ndarray) and like.dtype.kind == "f" else np.float64
        )
    return _huge_view(rng, len(shape) if len(shape) >= 2 else None)


def junk(rng, like=None):
    """Anything that is not a valid argument: an object, a scalar, a nested list, a bad array."""
    r = rng.random()
    if r < 0.45:
        return JUNK_SCALARS[rng.integers(len(JUNK_SCALARS))]
    if r < 0.55 and isinstance(like, np.ndarray) and like.size < 2**20:
        return like.tolist() if like.size < 64 else like.dtype.type(1)
    return _junk_array(rng, like)


class Case:
    """One call: ``fn(*args, **kwargs)``; ``outputs`` names the arguments it may write."""

    def __init__(self, name, fn, args, kwargs=None, outputs=(), core=True):
        self.name, self.fn, self.args, self.kwargs = name, fn, list(args), dict(kwargs or {})
        self.outputs = set(outputs)  # int positions or keyword names
        self.core = core  # a bnpy._core function (bitwise layout independence checked)
        self.mutations = []
        self.huge = False

    def keys(self):
        return list(range(len(self.args))) + list(self.kwargs)

    def get(self, key):
        return self.args[key] if isinstance(key, int) else self.kwargs[key]

    def set(self, key, value):
        if isinstance(key, int):
            self.args[key] = value
        else:
            self.kwargs[key] = value

    def describe(self):
        def short(v):
            if isinstance(v, np.ndarray):
                return "ndarray(shape={}, dtype={}, strides={}, C={}, aligned={}, writeable={})".format(
                    v.shape,
                    v.dtype,
                    v.strides,
                    v.flags.c_contiguous,
                    v.flags.aligned,
                    v.flags.writeable,
                )
            text = repr(v)
            return text if len(text) < 80 else text[:77] + "..."

        args = ", ".join(short(a) for a in self.args)
        kwargs = "".join(", {}={}".format(k, short(v)) for k, v in self.kwargs.items())
        return "{}({}{})  mutations={}".format(self.name, args, kwargs, self.mutations)


# ---- valid calls, one builder per function ---------------------------------------------------------


def _dtype(rng):
    return GOOD_DTYPES[rng.integers(2)]


def _shape(rng, rank=None, low=0):
    rank = int(rng.choice([1, 2, 2, 3, 3, 4, 4, 5])) if rank is None else rank
    sizes = (0, 1, 1, 2, 3, 3, 4, 5, 7)
    return tuple(max(low, int(sizes[rng.integers(len(sizes))])) for _ in range(rank))


def _bn_common(rng):
    dtype = _dtype(rng)
    shape = _shape(rng, low=1 if rng.random() < 0.8 else 0)
    axis = int(rng.integers(-len(shape), len(shape)))
    c = shape[axis]
    x = _values(rng, shape, dtype)
    vec = lambda: _values(rng, (c,), dtype)  # noqa: E731
    var = lambda: np.abs(_values(rng, (c,), dtype))  # noqa: E731
    eps = float(rng.choice([1e-3, 1e-5, 0.0, 1.0]))
    return dtype, shape, axis, c, x, vec, var, eps


def _out_choice(rng, like, inputs):
    """None, a fresh array, the input itself (in-place), or a view of an input (overlap)."""
    r = rng.random()
    if r < 0.5:
        return None
    if r < 0.8:
        return np.empty_like(like, order="C")
    if r < 0.9 and inputs:
        return inputs[rng.integers(len(inputs))]
    src = inputs[rng.integers(len(inputs))] if inputs else like
    flat = src.reshape(-1) if src.flags.c_contiguous else src.ravel()
    if flat.size >= like.size and like.size:
        return flat[flat.size - like.size :].reshape(like.shape)
    return np.empty_like(like)


def build_bn_forward(rng, api):
    dtype, shape, axis, c, x, vec, var, eps = _bn_common(rng)
    gamma = vec() if rng.random() < 0.8 else None
    beta = vec() if rng.random() < 0.8 else None
    out = _out_choice(rng, x, [x])
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
    out = _out_choice(rng, x, [x])
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
    dy = _values(rng, shape, dtype)
    gamma = vec() if rng.random() < 0.8 else None
    mean, variance = vec(), var()
    out = _out_choice(rng, x, [x, dy])
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
    dtype = _dtype(rng)
    c = int(rng.integers(0, 6))
    mm, mv = _values(rng, (c,), dtype), np.abs(_values(rng, (c,), dtype))
    mean, var = _values(rng, (c,), dtype), np.abs(_values(rng, (c,), dtype))
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
    out = _out_choice(rng, x, [x])
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
    dy = _values(rng, shape, dtype)
    gamma = vec() if rng.random() < 0.8 else None
    mean, variance, r, d = vec(), var(), var(), vec()
    out = _out_choice(rng, x, [x, dy])
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
    dtype = _dtype(rng)
    v = int(rng.integers(1, 4))
    shape = (v * int(rng.integers(1, 4)),) + _shape(rng, rank=int(rng.integers(1, 4)), low=1)
    axis = int(rng.choice([a for a in range(-len(shape), len(shape)) if a % len(shape)]))
    c, groups = shape[axis], shape[0] // v
    x = _values(rng, shape, dtype)
    gamma = _values(rng, (c,), dtype) if rng.random() < 0.8 else None
    eps = float(rng.choice([1e-3, 0.0, 1.0]))
    name = "ghost_batch_norm_backward" if backward else "ghost_batch_norm_forward"
    if backward:
        dy = _values(rng, shape, dtype)
        mean, var = _values(rng, (groups, c), dtype), np.abs(_values(rng, (groups, c), dtype))
        head, out = [dy, x, gamma, mean, var, v], _out_choice(rng, x, [x, dy])
    else:
        beta = _values(rng, (c,), dtype) if rng.random() < 0.8 else None
        head, out = [x, gamma, beta, v], _out_choice(rng, x, [x])
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
    vec64 = lambda: _values(rng, (c,), "float64")  # noqa: E731
    gamma = vec() if rng.random() < 0.8 else None
    beta = vec() if rng.random() < 0.8 else None
    if name == "batch_norm_local_stats":
        args, kwargs, outputs = [x], dict(axis=axis), []
    elif name == "batch_norm_merge_stats":
        parts = int(rng.integers(0, 4))
        counts = rng.integers(0, 5, parts).astype(np.float64)
        args = [counts, _values(rng, (parts, c), "float64")]
        args.append(np.abs(_values(rng, (parts, c), "float64")))
        kwargs, outputs = {}, []
    elif name == "batch_norm_normalize":
        out = _out_choice(rng, x, [x])
        args = [x, gamma, beta, vec64(), np.abs(vec64())]
        kwargs, outputs = dict(axis=axis, epsilon=eps, out=out), ["out"]
    elif name == "batch_norm_grad_sums":
        args, kwargs, outputs = [_values(rng, shape, dtype), x, vec64()], dict(axis=axis), []
    else:  # batch_norm_backward_apply
        dy = _values(rng, shape, dtype)
        out = _out_choice(rng, x, [x, dy])
        count = m + int(rng.integers(0, 3) * m)
        args = [dy, x, gamma, vec64(), np.abs(vec64()), vec64(), vec64(), count]
        kwargs, outputs = dict(axis=axis, epsilon=eps, out=out), ["out"]
    if api == "ops":
        return Case("ops." + name, getattr(ops, name), args, kwargs, outputs=outputs, core=False)
    # the core functions take the keywords positionally, in this order, out last
    core_args = args + [kwargs[k] for k in ("axis", "epsilon", "out") if k in kwargs]
    positions = [len(core_args) - 1] if "out" in kwargs else []
    return Case("_core." + name, getattr(_core, name), core_args, outputs=positions)


def _geometry(rng, pool=False):
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    if pool:
        pads = [
            int(rng.integers(0, kh)),
            int(rng.integers(0, kh)),
            int(rng.integers(0, kw)),
            int(rng.integers(0, kw)),
        ]
    else:
        pads = [int(rng.integers(0, 3)) for _ in range(4)]
    return [kh, kw, sh, sw] + pads


def _image_batch(rng, geometry, cf, dtype=None, min_hw=0):
    kh, kw, sh, sw, pt, pb, pl, pr = geometry
    n, c = int(rng.integers(0, 4)), int(rng.integers(1, 5))
    h = max(int(rng.integers(0, 7)), kh - pt - pb, min_hw)
    w = max(int(rng.integers(0, 7)), kw - pl - pr, min_hw)
    shape = (n, c, h, w) if cf else (n, h, w, c)
    return _values(rng, shape, dtype or _dtype(rng))


def _out_hw(x_shape, geometry, cf):
    kh, kw, sh, sw, pt, pb, pl, pr = geometry
    h, w = (x_shape[2], x_shape[3]) if cf else (x_shape[1], x_shape[2])
    return (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1


def _dilation(rng, geometry):
    """No dilation mostly, else (dh, dw) in 1..3; and the geometry with the dilated window's extent
    in place of the kernel size (for sizing the image and the output)."""
    dilation = (1, 1) if rng.random() < 0.7 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    extent = [(geometry[0] - 1) * dilation[0] + 1, (geometry[1] - 1) * dilation[1] + 1] + geometry[
        2:
    ]
    return list(dilation), extent


def build_im2col(rng, api):
    g, cf = _geometry(rng), bool(rng.integers(2))
    dilation, extent = _dilation(rng, g)
    x = _image_batch(rng, extent, cf)
    n, c = x.shape[0], x.shape[1] if cf else x.shape[3]
    oh, ow = _out_hw(x.shape, extent, cf)
    out = None
    if rng.random() < 0.4:
        out = np.empty((n * oh * ow, g[0] * g[1] * c), x.dtype)
    return Case("_core.im2col", _core.im2col, [x] + g + [cf, out] + dilation, outputs=[10])


def build_col2im(rng, api):
    g, cf = _geometry(rng), bool(rng.integers(2))
    dilation, extent = _dilation(rng, g)
    x = _image_batch(rng, extent, cf)
    n, c = x.shape[0], x.shape[1] if cf else x.shape[3]
    oh, ow = _out_hw(x.shape, extent, cf)
    dcol = _values(rng, (n * oh * ow, g[0] * g[1] * c), x.dtype)
    out = np.empty(x.shape, x.dtype) if rng.random() < 0.4 else None
    return Case(
        "_core.col2im",
        _core.col2im,
        [dcol, tuple(x.shape)] + g + [cf, out] + dilation,
        outputs=[11],
    )


def build_add_bias_rows(rng, api):
    dtype = _dtype(rng)
    y = _values(rng, _shape(rng, 2), dtype)
    bias = _values(rng, (y.shape[1],), dtype)
    return Case("_core.add_bias_rows", _core.add_bias_rows, [y, bias], outputs=[0])


def build_sum_rows(rng, api):
    return Case("_core.sum_rows", _core.sum_rows, [_values(rng, _shape(rng, 2), _dtype(rng))])


def build_batch_transpose(rng, api):
    a = _values(rng, _shape(rng, 3), _dtype(rng))
    bias = _values(rng, (a.shape[2],), a.dtype) if rng.random() < 0.5 else None
    return Case("_core.batch_transpose", _core.batch_transpose, [a, bias])


def build_pool(rng, api, kind):
    g, cf = _geometry(rng, pool=True), bool(rng.integers(2))
    x = _image_batch(rng, g, cf, min_hw=1)
    fn = _core.max_pool2d if kind == "max" else _core.avg_pool2d
    return Case("_core.{}_pool2d".format(kind), fn, [x] + g + [cf])


def build_max_pool_backward(rng, api):
    g, cf = _geometry(rng, pool=True), bool(rng.integers(2))
    x = _image_batch(rng, g, cf, min_hw=1)
    y, argmax = _core.max_pool2d(x, *g, cf)
    if argmax.size and rng.random() < 0.3:  # an index outside the plane: must be refused
        argmax = argmax.copy()
        argmax.flat[rng.integers(argmax.size)] = int(
            rng.choice([-1, x.size + 1, 2**31 - 1, -(2**31)])
        )
    dy = _values(rng, y.shape, x.dtype)
    return Case(
        "_core.max_pool2d_backward", _core.max_pool2d_backward, [dy, argmax, tuple(x.shape), cf]
    )


def build_avg_pool_backward(rng, api):
    g, cf = _geometry(rng, pool=True), bool(rng.integers(2))
    x = _image_batch(rng, g, cf, min_hw=1)
    n, c = x.shape[0], x.shape[1] if cf else x.shape[3]
    oh, ow = _out_hw(x.shape, g, cf)
    dy = _values(rng, (n, c, oh, ow) if cf else (n, oh, ow, c), x.dtype)
    return Case(
        "_core.avg_pool2d_backward", _core.avg_pool2d_backward, [dy, tuple(x.shape)] + g + [cf]
    )


def build_conv2d_direct(rng, api):
    g = _geometry(rng)
    x = _image_batch(rng, g, False, np.float32)
    cout = 8 * int(rng.integers(1, 4))
    kernel = _values(rng, (g[0], g[1], x.shape[3], cout), np.float32)
    bias = _values(rng, (cout,), np.float32) if rng.random() < 0.5 else None
    return Case("_core.conv2d_direct", _core.conv2d_direct, [x, kernel, bias] + g[2:])


def build_conv2d_direct_dkernel(rng, api):
    g = _geometry(rng)
    x = _image_batch(rng, g, False, np.float32)
    kh, kw, sh, sw, pt, pb, pl, pr = g
    oh, ow = _out_hw(x.shape, g, False)
    cout = 8 * int(rng.integers(1, 4))
    xpad = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dy = _values(rng, (x.shape[0], oh, ow, cout), np.float32)
    return Case(
        "_core.conv2d_direct_dkernel", _core.conv2d_direct_dkernel, [dy, xpad, tuple(x.shape)] + g
    )


def _fft_problem(rng):
    """A consistent FFT convolution: sizes, an FFT size that fits, x's and the kernels' spectra."""
    n, cin, cout = (int(v) for v in rng.integers(1, [3, 5, 12]))
    h, w = (int(v) for v in rng.integers(1, 9, 2))
    kh, kw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
    p_h, p_w = (
        int(rng.choice([v for v in (1, 2, 3, 4, 5, 6, 8, 9, 10, 12) if v >= m])) for m in (h, w)
    )
    x = _values(rng, (1, h, w, n * cin), np.float32)
    kernel = _values(rng, (kh, kw, cin, cout), np.float32)
    xspec = _core.fft_spectrum(x, p_h, p_w, 0, 0)
    kspec = _core.fft_spectrum(np.ascontiguousarray(kernel.transpose(2, 0, 1, 3)), p_h, p_w, 0, 0)
    ktspec = _core.fft_spectrum(np.ascontiguousarray(kernel.transpose(3, 0, 1, 2)), p_h, p_w, 0, 0)
    return n, cin, cout, h, w, kh, kw, p_h, p_w, xspec, kspec, ktspec


def build_fft_spectrum(rng, api):
    p_h, p_w = (int(v) for v in rng.choice([1, 2, 3, 4, 5, 8, 9, 10, 12], 2))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, p_h + 1)), int(rng.integers(1, p_w + 1)))
    a = _values(rng, shape + (int(rng.integers(1, 12)),), np.float32)
    shifts = [int(v) for v in rng.integers(-6, 7, 2)]
    return Case("_core.fft_spectrum", _core.fft_spectrum, [a, p_h, p_w] + shifts)


def build_conv2d_fft(rng, api, which):
    n, cin, cout, h, w, kh, kw, p_h, p_w, xspec, kspec, ktspec = _fft_problem(rng)
    oh, ow = int(rng.integers(1, p_h + 1)), int(rng.integers(1, p_w + 1))
    dy = _values(rng, (n, oh, ow, cout), np.float32)
    if which == "forward":
        bias = _values(rng, (cout,), np.float32) if rng.random() < 0.5 else None
        args = [xspec, kspec, bias, n, cout, oh, ow, p_w]
    elif which == "dkernel":
        args = [dy, xspec, cin, kh, kw] + [int(v) for v in rng.integers(0, 4, 2)] + [p_w]
    else:
        args = [dy, ktspec, cin, h, w, p_w]
    name = "conv2d_fft_" + which
    return Case("_core." + name, getattr(_core, name), args)


def build_affine_warp(rng, api):
    cf = bool(rng.integers(2))
    x = _image_batch(rng, [1, 1, 1, 1, 0, 0, 0, 0], cf)
    n = x.shape[0]
    mats = np.tile(np.eye(3), (n, 1, 1))
    mats[:, :2, :] += rng.standard_normal((n, 2, 3)) * rng.choice([0.0, 0.3, 3.0, 1e6])
    if rng.random() < 0.3:
        mats = mats[:, :2, :]
    kwargs = dict(
        order=int(rng.integers(2)),
        fill_mode=str(rng.choice(["constant", "nearest", "reflect", "wrap"])),
        cval=float(rng.choice([0.0, -1.5, np.nan])),
        data_format="channels_first" if cf else "channels_last",
    )
    out = np.empty_like(x) if rng.random() < 0.3 else None
    if api == "core":
        return Case(
            "_core.affine_warp",
            _core.affine_warp,
            [
                x,
                mats,
                kwargs["order"],
                kwargs["fill_mode"],
                kwargs["cval"],
                kwargs["data_format"],
                out,
            ],
            outputs=[6],
        )
    if rng.random() < 0.3 and n:  # the ops API also takes one image and one matrix
        x, mats = x[0], mats[0]
        out = None if out is None else out[0]
    return Case(
        "ops.affine_warp",
        ops.affine_warp,
        [x, mats],
        dict(kwargs, out=out),
        outputs=["out"],
        core=False,
    )


def _keras_geometry(rng):
    strides = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = str(rng.choice(["valid", "same"]))
    if rng.random() < 0.2:
        padding = (
            (int(rng.integers(0, 3)), int(rng.integers(0, 3))),
            (int(rng.integers(0, 3)), int(rng.integers(0, 3))),
        )
    return strides, padding


def build_ops_conv(rng, api, which):
    cf = bool(rng.integers(2))
    dtype = _dtype(rng)
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    n, c, h, w = (
        int(rng.integers(0, 3)),
        int(rng.integers(1, 4)),
        int(rng.integers(kh, 7)),
        int(rng.integers(kw, 7)),
    )
    x = _values(rng, (n, c, h, w) if cf else (n, h, w, c), dtype)
    cout = int(rng.choice([1, 3, 8, 16]))
    kernel = _values(rng, (kh, kw, c, cout), dtype)
    bias = _values(rng, (cout,), dtype) if rng.random() < 0.7 else None
    strides, padding = _keras_geometry(rng)
    fmt = "channels_first" if cf else "channels_last"
    # A dilation whose window still fits the unpadded image (so that 'valid' stays valid).
    dilation = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.3 else (1, 1)
    if (kh - 1) * dilation[0] + 1 > h or (kw - 1) * dilation[1] + 1 > w:
        dilation = (1, 1)
    args = [x, kernel, bias, strides, padding, fmt, dilation]
    if which == "conv2d":
        return Case("ops.conv2d", ops.conv2d, args, core=False)
    if which == "forward":
        return Case("ops.conv2d_forward", ops.conv2d_forward, args, core=False)
    if (
        cf and n == 0
    ):  # a known bug, see tests/test_fuzz_core.py::test_conv2d_channels_first_empty_batch
        x = _values(rng, (1, c, h, w), dtype)
    y, ctx = ops.conv2d_forward(x, kernel, bias, strides, padding, fmt, dilation)
    dy = _values(rng, y.shape, dtype)
    ctx_arg = ctx if rng.random() < 0.95 else object()
    return Case(
        "ops.conv2d_backward", ops.conv2d_backward, [dy, ctx_arg, bool(rng.integers(2))], core=False
    )


def build_conv2d_setup(rng, api):
    # the arguments of a convolution as ops.conv passes them on (ops.conv2d's case, unwrapped)
    x, kernel, bias, strides, padding, fmt, dilation = build_ops_conv(rng, api, "conv2d").args
    args = ["conv2d", x, kernel, bias, strides, padding, dilation, fmt == "channels_first"]
    return Case("_core.conv2d_setup", _core.conv2d_setup, args)


def build_ops_pool(rng, api, kind, which):
    cf = bool(rng.integers(2))
    pool = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    strides = None if rng.random() < 0.5 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = str(rng.choice(["valid", "same"]))
    n, c = int(rng.integers(0, 3)), int(rng.integers(1, 4))
    h, w = int(rng.integers(pool[0], 7)), int(rng.integers(pool[1], 7))
    x = _values(rng, (n, c, h, w) if cf else (n, h, w, c), _dtype(rng))
    fmt = "channels_first" if cf else "channels_last"
    forward = getattr(ops, kind + "_pool2d_forward")
    if which == "forward":
        return Case(
            "ops.{}_pool2d_forward".format(kind),
            forward,
            [x, pool, strides, padding, fmt],
            core=False,
        )
    y, ctx = forward(x, pool, strides, padding, fmt)
    return Case(
        "ops.{}_pool2d_backward".format(kind),
        getattr(ops, kind + "_pool2d_backward"),
        [_values(rng, y.shape, x.dtype), ctx],
        core=False,
    )


def build_pool2d_setup(rng, api):
    # the arguments of a pooling as ops.conv passes them on (the forward's case, unwrapped)
    x, pool, strides, padding, fmt = build_ops_pool(rng, api, "max", "forward").args
    args = ["max_pool2d_forward", x, pool, strides, padding, fmt == "channels_first"]
    return Case("_core.pool2d_setup", _core.pool2d_setup, args)


def build_threads(rng, api):
    value = int(rng.choice([1, 2, 1, 2, 0, -1, 5000])) if rng.random() < 0.8 else junk(rng)
    fn = _core.set_num_threads if api == "core" else bnpy.set_num_threads
    # core=False: the result (the previous count) depends on state, so no layout re-run.
    return Case(
        ("_core" if api == "core" else "bnpy") + ".set_num_threads", fn, [value], core=False
    )


BUILDERS = [
    ("core", build_bn_forward),
    ("ops", build_bn_forward),
    ("core", build_bn_inference),
    ("ops", build_bn_inference),
    ("core", build_bn_backward),
    ("ops", build_bn_backward),
    ("core", lambda rng, api: build_bn_backward(rng, api, inference=True)),
    ("ops", lambda rng, api: build_bn_backward(rng, api, inference=True)),
    ("core", build_update_moving_stats),
    ("ops", build_update_moving_stats),
    ("core", build_renorm_forward),
    ("ops", build_renorm_forward),
    ("core", build_renorm_backward),
    ("ops", build_renorm_backward),
    ("core", build_ghost),
    ("ops", build_ghost),
    ("core", lambda rng, api: build_ghost(rng, api, backward=True)),
    ("ops", lambda rng, api: build_ghost(rng, api, backward=True)),
    ("core", build_im2col),
    ("core", build_conv2d_setup),
    ("core", build_pool2d_setup),
    ("core", build_col2im),
    ("core", build_add_bias_rows),
    ("core", build_sum_rows),
    ("core", build_batch_transpose),
    ("core", lambda rng, api: build_pool(rng, api, "max")),
    ("core", lambda rng, api: build_pool(rng, api, "avg")),
    ("core", build_max_pool_backward),
    ("core", build_avg_pool_backward),
    ("core", build_affine_warp),
    ("ops", build_affine_warp),
    ("ops", lambda rng, api: build_ops_conv(rng, api, "conv2d")),
    ("ops", lambda rng, api: build_ops_conv(rng, api, "forward")),
    ("ops", lambda rng, api: build_ops_conv(rng, api, "backward")),
    ("ops", lambda rng, api: build_ops_pool(rng, api, "max", "forward")),
    ("ops", lambda rng, api: build_ops_pool(rng, api, "max", "backward")),
    ("ops", lambda rng, api: build_ops_pool(rng, api, "avg", "forward")),
    ("ops", lambda rng, api: build_ops_pool(rng, api, "avg", "backward")),
    ("core", build_threads),
    ("ops", build_threads),
    ("core", build_fft_spectrum),
    ("core", lambda rng, api: build_conv2d_fft(rng, api, "forward")),
    ("core", lambda rng, api: build_conv2d_fft(rng, api, "dkernel")),
    ("core", lambda rng, api: build_conv2d_fft(rng, api, "dinput")),
    *[
        (api, lambda rng, api, name=name: build_bn_sync(rng, api, name))
        for api in ("core", "ops")
        for name in (
            "batch_norm_local_stats",
            "batch_norm_merge_stats",
            "batch_norm_normalize",
            "batch_norm_grad_sums",
            "batch_norm_backward_apply",
        )
    ],
]
if _core.conv_direct_available():
    BUILDERS += [("core", build_conv2d_direct), ("core", build_conv2d_direct_dkernel)]

#: The names of the functions the campaign covers (checked against the modules by the tests).
COVERED = {
    "batch_norm_forward",
    "batch_renorm_forward",
    "batch_renorm_backward",
    "ghost_batch_norm_forward",
    "ghost_batch_norm_backward",
    "batch_norm_inference",
    "batch_norm_backward",
    "batch_norm_inference_backward",
    "update_moving_stats",
    "batch_norm_local_stats",
    "batch_norm_merge_stats",
    "batch_norm_normalize",
    "batch_norm_grad_sums",
    "batch_norm_backward_apply",
    "im2col",
    "conv2d_setup",
    "pool2d_setup",
    "col2im",
    "add_bias_rows",
    "sum_rows",
    "batch_transpose",
    "max_pool2d",
    "avg_pool2d",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "conv2d_direct",
    "conv2d_direct_dkernel",
    "fft_spectrum",
    "conv2d_fft_forward",
    "conv2d_fft_dkernel",
    "conv2d_fft_dinput",
    "affine_warp",
    "set_num_threads",
    "conv2d",
    "conv2d_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "avg_pool2d_forward",
    "conv_direct_available",
    "get_num_threads",
}


# ---- mutations -------------------------------------------------------------------------------------


def _array_keys(case):
    """The arguments that are ordinary (allocatable) arrays."""
    return [
        k for k in case.keys() if isinstance(case.get(k), np.ndarray) and case.get(k).size < 2**20
    ]


def mutate(rng, case):
    """Apply one random mutation to case (recorded in case.mutations)."""
    keys = case.keys()
    if not keys:
        return
    r = rng.random()
    arrays = _array_keys(case)
    if r < 0.4 or not arrays:  # replace any argument by junk
        key = keys[rng.integers(len(keys))]
        value = junk(rng, case.get(key))
        if isinstance(value, np.ndarray) and value.size > 2**40:
            case.huge = True
        case.set(key, value)
        case.mutations.append("junk {}".format(key))
    elif r < 0.65:  # re-lay-out an array argument (still valid, same values)
        key = arrays[rng.integers(len(arrays))]
        kind = ("fortran", "negative", "strided", "unaligned", "swapped", "readonly")[
            rng.integers(6)
        ]
        case.set(key, _relayout(rng, case.get(key), kind))
        case.mutations.append("relayout {} {}".format(key, kind))
    elif r < 0.8:  # an output argument: aliased, read-only, non-contiguous, unaligned, wrong dtype
        outs = [k for k in case.outputs if k in keys]
        key = outs[rng.integers(len(outs))] if outs else arrays[rng.integers(len(arrays))]
        current = case.get(key)
        others = [case.get(k) for k in arrays if k != key]
        like = current if key in arrays else (others[0] if others else np.empty(3))
        choice = rng.integers(5)
        if choice == 0 and others:
            src = others[rng.integers(len(others))]
            value = (
                src if src.shape == like.shape else _relayout(rng, np.empty_like(like), "strided")
            )
        elif choice == 1:
            value = np.empty_like(like)
            value.flags.writeable = False
        elif choice == 2:
            value = _relayout(
                rng,
                np.empty_like(like),
                ("fortran", "negative", "strided", "unaligned", "swapped")[rng.integers(5)],
            )
        elif choice == 3:
            value = np.empty(like.shape, np.float64 if like.dtype == np.float32 else np.float32)
        else:
            value = np.empty(like.shape[:-1] if like.ndim else (1,), like.dtype)
        case.set(key, value)
        case.mutations.append("out {} #{}".format(key, choice))
    else:  # a scalar argument pushed to an extreme
        ints = [
            k
            for k in keys
            if isinstance(case.get(k), (int, float, np.integer))
            and not isinstance(case.get(k), bool)
        ]
        key = ints[rng.integers(len(ints))] if ints else keys[rng.integers(len(keys))]
        value = [
            0,
            -1,
            -(2**31),
            2**31,
            2**62,
            2**63 - 1,
            2**64,
            -(2**63),
            4096,
            float("nan"),
            float("inf"),
            -0.0,
            1e-320,
            np.int32(2**31 - 1),
        ][rng.integers(14)]
        case.set(key, value)
        case.mutations.append("extreme {}={!r}".format(key, value))


def make_case(seed, index):
    """The case number `index` of campaign `seed` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    api, builder = BUILDERS[rng.integers(len(BUILDERS))]
    case = builder(rng, api)
    n_mutations = int(rng.choice([0, 1, 1, 1, 2, 3]))
    for _ in range(n_mutations):
        mutate(rng, case)
    return case


# ---- the contract ------------------------------------------------------------------------------------


class ContractViolation(AssertionError):
    pass


def _memory_roots(value, found):
    """Every ndarray reachable from value (tuples/lists/contexts), keyed by its root buffer."""
    if isinstance(value, np.ndarray):
        root = value
        while isinstance(root.base, np.ndarray):
            root = root.base
        found.setdefault(id(root), (root, []))[1].append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _memory_roots(v, found)
    elif hasattr(value, "__slots__"):
        for slot in getattr(value, "__slots__", ()):
            _memory_roots(getattr(value, slot, None), found)


def _snapshot(root):
    if root.dtype.hasobject or root.nbytes > (8 << 20):
        return None
    return np.ascontiguousarray(root).view(np.uint8).tobytes() if root.size else b""


def _contiguous_copy(value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and value.dtype.byteorder == ">":
            return value.astype(value.dtype.newbyteorder("="))
        return np.array(value, order="C", copy=True)
    return value


def _result_bytes(result):
    if isinstance(result, np.ndarray):
        return (result.shape, result.dtype.str, np.ascontiguousarray(result).tobytes())
    if isinstance(result, tuple):
        return tuple(_result_bytes(r) for r in result)
    return repr(result)


def _has_large_int(case):
    """An int argument large enough (>= 2**16) that an honest result may not fit in memory."""

    def large(v):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return abs(int(v)) >= 2**16
        if isinstance(v, (tuple, list)):
            return any(large(u) for u in v)
        return False

    return any(large(case.get(k)) for k in case.keys())


def _has_c_overflow_int(case):
    def big(v):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return not -(2**63) <= int(v) < 2**63
        if isinstance(v, (tuple, list)):
            return any(big(u) for u in v)
        return False

    return any(big(case.get(k)) for k in case.keys())


def run_case(case, check_layout=True):
    """Call case and check the contract; returns "ok" or "rejected:<ExcName>". Raises
    ContractViolation (with the case described) when the contract is broken. The thread count is
    restored afterwards (a set_num_threads case may change it)."""
    previous_threads = _core.get_num_threads()
    try:
        return _run_case(case, check_layout)
    finally:
        _core.set_num_threads(previous_threads)


def _run_case(case, check_layout):
    roots = {}
    for key in case.keys():
        _memory_roots(case.get(key), roots)
    output_roots = set()
    for key in case.outputs:
        if key in case.keys():
            found = {}
            _memory_roots(case.get(key), found)
            output_roots.update(found)
    before = {rid: _snapshot(root) for rid, (root, _) in roots.items()}
    try:
        result = case.fn(*case.args, **case.kwargs)
        outcome = None
    except ACCEPTED_ERRORS as exc:
        outcome = "rejected:" + type(exc).__name__
        message = str(exc)
        if not message:
            raise ContractViolation("empty error message: {}".format(case.describe())) from None
        result = None
    except OverflowError as exc:
        # CPython's own argument parsing ("n" format) raises OverflowError for an int beyond
        # ssize_t. Tolerated for the private _core functions only, and only for such an int; the
        # public bnpy.ops functions must turn it into a ValueError.
        if not _has_c_overflow_int(case):
            raise ContractViolation(
                "OverflowError: {} raised by {}".format(exc, case.describe())
            ) from exc
        if not case.core and not case.name.startswith(KNOWN_OVERFLOW_IN):
            raise ContractViolation(
                "OverflowError: {} raised by {}".format(exc, case.describe())
            ) from exc
        outcome, result = ("rejected:OverflowError" if case.core else "known:OverflowError"), None
    except MemoryError as exc:
        if not (case.huge or _has_large_int(case)):
            raise ContractViolation(
                "MemoryError for a small input: {}\n  {}".format(exc, case.describe())
            ) from exc
        outcome, result = "rejected:MemoryError", None
    except Exception as exc:  # anything else breaks the contract
        raise ContractViolation(
            "{}: {} raised by {}".format(type(exc).__name__, exc, case.describe())
        ) from exc
    accepted = outcome is None
    for rid, (root, _views) in roots.items():
        if before[rid] is None or (accepted and rid in output_roots):
            continue
        if _snapshot(root) != before[rid]:
            what = "an accepted call" if accepted else "a rejected call ({})".format(outcome)
            raise ContractViolation(
                "{} wrote into an argument it must not write: {}".format(what, case.describe())
            )
    if not accepted:
        return outcome
    if (
        check_layout
        and case.core
        and not output_roots
        and any(m.startswith("relayout") for m in case.mutations)
    ):
        plain = [_contiguous_copy(a) for a in case.args]
        plain_kwargs = {k: _contiguous_copy(v) for k, v in case.kwargs.items()}
        again = case.fn(*plain, **plain_kwargs)
        if _result_bytes(again) != _result_bytes(result):
            raise ContractViolation(
                "result depends on the input layout: {}".format(case.describe())
            )
    return "ok"
