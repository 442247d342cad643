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

A crash, a sanitizer report or a hang is caught by the driver (fuzz_core.py), not here. The valid
calls are built in builders_bn.py and builders_image.py, their arguments from calls.py.
"""

import functools

import numpy as np

import bnpy
from bnpy import _core

from . import builders_bn as bn
from . import builders_image as image
from .calls import Case, junk, relayout

ACCEPTED_ERRORS = (TypeError, ValueError)

#: Known bugs the campaign tolerates (counted as "known:..."), each with a strict xfail test in
#: tests/test_fuzz_core.py that starts passing -- and so fails -- once the bug is fixed:
#: bnpy.ops' convolution and pooling pass an int beyond ssize_t (strides, pool_size, padding) on
#: to bnpy._core, whose argument parsing raises OverflowError instead of ValueError; so does
#: update_moving_stats for such a count (py_batchnorm.c converts it with PyExc_OverflowError).
# Public bnpy.ops functions must turn every out-of-range int into ValueError; only the private
# bnpy._core functions may let CPython's argument parsing raise OverflowError.
KNOWN_OVERFLOW_IN = ()


def build_threads(rng, api):
    value = int(rng.choice([1, 2, 1, 2, 0, -1, 5000])) if rng.random() < 0.8 else junk(rng)
    fn = _core.set_num_threads if api == "core" else bnpy.set_num_threads
    # core=False: the result (the previous count) depends on state, so no layout re-run.
    return Case(
        ("_core" if api == "core" else "bnpy") + ".set_num_threads", fn, [value], core=False
    )


def _core_and_ops(*builders):
    """(api, builder) pairs: each builder for bnpy._core, then for bnpy.ops, in the order given (a
    case picks its builder by index, so the order fixes which cases a seed makes)."""
    return [(api, builder) for builder in builders for api in ("core", "ops")]


BUILDERS = [
    *_core_and_ops(
        bn.build_bn_forward,
        bn.build_bn_inference,
        bn.build_bn_backward,
        functools.partial(bn.build_bn_backward, inference=True),
        bn.build_update_moving_stats,
        bn.build_renorm_forward,
        bn.build_renorm_backward,
        bn.build_ghost,
        functools.partial(bn.build_ghost, backward=True),
    ),
    ("core", image.build_im2col),
    ("core", image.build_conv2d_setup),
    ("core", image.build_pool2d_setup),
    ("core", image.build_col2im),
    ("core", image.build_conv_output),
    ("core", image.build_conv_output_backward),
    ("core", lambda rng, api: image.build_pool(rng, api, "max")),
    ("core", lambda rng, api: image.build_pool(rng, api, "avg")),
    ("core", image.build_max_pool_backward),
    ("core", image.build_avg_pool_backward),
    *_core_and_ops(image.build_affine_warp),
    ("ops", lambda rng, api: image.build_ops_conv(rng, api, "conv2d")),
    ("ops", lambda rng, api: image.build_ops_conv(rng, api, "forward")),
    ("ops", lambda rng, api: image.build_ops_conv(rng, api, "backward")),
    ("ops", lambda rng, api: image.build_ops_pool(rng, api, "max", "forward")),
    ("ops", lambda rng, api: image.build_ops_pool(rng, api, "max", "backward")),
    ("ops", lambda rng, api: image.build_ops_pool(rng, api, "avg", "forward")),
    ("ops", lambda rng, api: image.build_ops_pool(rng, api, "avg", "backward")),
    *_core_and_ops(build_threads),
    ("core", image.build_fft_spectrum),
    ("core", lambda rng, api: image.build_conv2d_fft(rng, api, "forward")),
    ("core", lambda rng, api: image.build_conv2d_fft(rng, api, "dkernel")),
    ("core", lambda rng, api: image.build_conv2d_fft(rng, api, "dinput")),
    *[
        (api, lambda rng, api, name=name: bn.build_bn_sync(rng, api, name))
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
    BUILDERS += [("core", image.build_conv2d_direct), ("core", image.build_conv2d_direct_dkernel)]

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
    "conv_output",
    "conv_output_backward",
    "pool2d",
    "pool2d_backward",
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
    "max_pool2d_backward",
    "avg_pool2d_backward",
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
        case.set(key, relayout(rng, case.get(key), kind))
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
                src if src.shape == like.shape else relayout(rng, np.empty_like(like), "strided")
            )
        elif choice == 1:
            value = np.empty_like(like)
            value.flags.writeable = False
        elif choice == 2:
            value = relayout(
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
