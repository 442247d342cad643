"""One call of the fuzz campaign (:class:`Case`) and the random material its arguments are made of:
values with NaN/Inf/denormals sprinkled in, the same values in another memory layout, junk (a wrong
object, dtype, rank or size), shapes, dtypes and ``out=`` choices. See cases.py for the campaign."""

import numpy as np

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


def random_values(rng, shape, dtype):
    """Normal values with, sometimes, NaN/Inf/denormal/huge values sprinkled in."""
    size = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    vals = rng.standard_normal(size) * (10.0 ** rng.integers(-3, 4)) + rng.choice([0.0, 0.0, 1e4])
    if size and rng.random() < 0.25:
        k = int(rng.integers(1, min(size, 4) + 1))
        vals[rng.integers(0, size, k)] = rng.choice(SPECIAL_VALUES, k)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return vals.astype(dtype).reshape(shape)


def relayout(rng, a, kind=None):
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


def random_dtype(rng):
    return GOOD_DTYPES[rng.integers(2)]


def random_shape(rng, rank=None, low=0):
    rank = int(rng.choice([1, 2, 2, 3, 3, 4, 4, 5])) if rank is None else rank
    sizes = (0, 1, 1, 2, 3, 3, 4, 5, 7)
    return tuple(max(low, int(sizes[rng.integers(len(sizes))])) for _ in range(rank))


def out_choice(rng, like, inputs):
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
