"""The batch-norm entry points of bnpy._core for leak_check.py: name -> (good calls, bad calls as
(exception type, thunk)), on the arguments of leak_check.ARGS (passed in as ``a``)."""

from bnpy import _core


def bn_points(a):
    """Training and inference passes, Batch Renormalization, ghost batches, moving statistics."""
    return {
        "batch_norm_forward": (
            [
                lambda: _core.batch_norm_forward(a["x64"], a["gamma64"], None, -1, 1e-3, None),
                lambda: _core.batch_norm_forward(
                    a["x64_swapped"], None, a["gamma64"], 3, 0.0, a["out_nhwc64"]
                ),
            ],
            [
                (
                    TypeError,
                    lambda: _core.batch_norm_forward(a["x64"], a["rows32"], None, -1, 1e-3, None),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_forward(
                        a["x64_swapped"], a["gamma64"], None, -1, 1e-3, a["readonly64"]
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_forward(a["x64"], None, None, -1, -1.0, None),
                ),
            ],
        ),
        "batch_norm_inference": (
            [
                lambda: _core.batch_norm_inference(
                    a["x64"],
                    a["gamma64"],
                    a["gamma64"],
                    a["gamma64"],
                    a["var64"],
                    -1,
                    1e-3,
                    a["out_nhwc64"],
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_inference(
                        a["x64"], None, None, a["gamma64"], a["var64"], -1, 1e-3, a["x64_swapped"]
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.batch_norm_inference(
                        a["x64"], None, None, a["gamma64"], None, -1, 1e-3, None
                    ),
                ),
            ],
        ),
        "batch_norm_backward": (
            [
                lambda: _core.batch_norm_backward(
                    a["x64"],
                    a["x64_swapped"],
                    a["gamma64"],
                    a["gamma64"],
                    a["var64"],
                    -1,
                    1e-3,
                    None,
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_backward(
                        a["x64"], a["x64"], None, a["gamma64"], a["var64"], -1, 1e-3, a["gamma64"]
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.batch_norm_backward(
                        a["x64"], a["x32"], None, a["gamma64"], a["var64"], -1, 1e-3, None
                    ),
                ),
            ],
        ),
        "batch_norm_inference_backward": (
            [
                lambda: _core.batch_norm_inference_backward(
                    a["x64"], a["x64"], None, a["gamma64"], a["var64"], -1, 1e-3, a["out_nhwc64"]
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_inference_backward(
                        a["x64"], a["x64"], None, a["gamma64"], a["var64"], 7, 1e-3, None
                    ),
                )
            ],
        ),
        "batch_renorm_forward": (
            [
                lambda: _core.batch_renorm_forward(
                    a["x64"],
                    a["gamma64"],
                    None,
                    a["gamma64"],
                    a["var64"],
                    -1,
                    1e-3,
                    0.5,
                    2.0,
                    1.0,
                    None,
                ),
                lambda: _core.batch_renorm_forward(
                    a["x64_swapped"],
                    None,
                    a["gamma64"],
                    a["moving_mean"],
                    a["var64"],
                    3,
                    0.0,
                    0.0,
                    float("inf"),
                    float("inf"),
                    a["out_nhwc64"],
                ),
            ],
            [
                (
                    TypeError,
                    lambda: _core.batch_renorm_forward(
                        a["x64"], None, None, a["rows32"], a["var64"], -1, 1e-3, 0.0, 1.0, 0.0, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_renorm_forward(
                        a["x64_swapped"],
                        None,
                        None,
                        a["gamma64"],
                        a["var64"],
                        -1,
                        1e-3,
                        2.0,
                        1.0,
                        0.0,
                        None,
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_renorm_forward(
                        a["x64"],
                        None,
                        None,
                        a["gamma64"],
                        a["var64"],
                        -1,
                        1e-3,
                        0.0,
                        1.0,
                        0.0,
                        a["readonly64"],
                    ),
                ),
            ],
        ),
        "batch_renorm_backward": (
            [
                lambda: _core.batch_renorm_backward(
                    a["x64"],
                    a["x64_swapped"],
                    a["gamma64"],
                    a["gamma64"],
                    a["var64"],
                    a["var64"],
                    a["gamma64"],
                    -1,
                    1e-3,
                    None,
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_renorm_backward(
                        a["x64"],
                        a["x64"],
                        None,
                        a["gamma64"],
                        a["var64"],
                        a["var64"],
                        a["gamma64"],
                        -1,
                        1e-3,
                        a["gamma64"],
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.batch_renorm_backward(
                        a["x64"],
                        a["x64"],
                        None,
                        a["gamma64"],
                        a["var64"],
                        None,
                        a["gamma64"],
                        -1,
                        1e-3,
                        None,
                    ),
                ),
            ],
        ),
        "ghost_batch_norm_forward": (
            [
                lambda: _core.ghost_batch_norm_forward(
                    a["x64"], a["gamma64"], None, 1, -1, 1e-3, None
                ),
                lambda: _core.ghost_batch_norm_forward(
                    a["x64_swapped"], None, a["gamma64"], 2, 3, 0.0, a["out_nhwc64"]
                ),
            ],
            [
                (
                    ValueError,
                    lambda: _core.ghost_batch_norm_forward(a["x64"], None, None, 3, -1, 1e-3, None),
                ),
                (
                    TypeError,
                    lambda: _core.ghost_batch_norm_forward(
                        a["x64_swapped"], a["rows32"], None, 2, -1, 1e-3, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.ghost_batch_norm_forward(
                        a["x64"], None, None, 2, -1, 1e-3, a["readonly64"]
                    ),
                ),
            ],
        ),
        "ghost_batch_norm_backward": (
            [
                lambda: _core.ghost_batch_norm_backward(
                    a["x64"],
                    a["x64_swapped"],
                    a["gamma64"],
                    a["stats_1x3"],
                    a["stats_1x3"],
                    2,
                    -1,
                    1e-3,
                    None,
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.ghost_batch_norm_backward(
                        a["x64"], a["x64"], None, a["gamma64"], a["stats_1x3"], 2, -1, 1e-3, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.ghost_batch_norm_backward(
                        a["x64"],
                        a["x64"],
                        None,
                        a["stats_1x3"],
                        a["stats_1x3"],
                        2,
                        -1,
                        1e-3,
                        a["readonly64"],
                    ),
                ),
            ],
        ),
        "update_moving_stats": (
            [
                lambda: _core.update_moving_stats(
                    a["moving_mean"], a["moving_var"], a["gamma64"], a["var64"], 0.99, 10
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.update_moving_stats(
                        a["moving_mean"], a["moving_var"], a["gamma64"], a["var64"], 1.5, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.update_moving_stats(
                        a["moving_mean"], a["moving_mean"], a["gamma64"], a["var64"], 0.5, None
                    ),
                ),
            ],
        ),
    }


def bn_sync_points(a):
    """The synchronized-BN phases (py_bn_sync.c): float64 statistics of (2, 6, 5, 3) data."""
    stats = (a["gamma64"], a["var64"])  # any float64 (3,) vectors
    return {
        "batch_norm_local_stats": (
            [
                lambda: _core.batch_norm_local_stats(a["x64"], -1),
                lambda: _core.batch_norm_local_stats(a["x32_strided"], 1),
            ],
            [
                (TypeError, lambda: _core.batch_norm_local_stats(a["ints"], -1)),
                (ValueError, lambda: _core.batch_norm_local_stats(a["x32_strided"], 7)),
            ],
        ),
        "batch_norm_merge_stats": (
            [lambda: _core.batch_norm_merge_stats(a["counts7"], a["rows64"], a["rows64"])],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_merge_stats(
                        a["counts_negative"], a["rows64"], a["rows64"]
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_merge_stats(a["counts7"], a["rows64"], a["cube64"]),
                ),
            ],
        ),
        "batch_norm_normalize": (
            [
                lambda: _core.batch_norm_normalize(
                    a["x64"], None, a["gamma64"], *stats, -1, 1e-3, a["out_nhwc64"]
                ),
                lambda: _core.batch_norm_normalize(
                    a["x32_strided"], None, None, *stats, -1, 1e-3, None
                ),
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_normalize(
                        a["x32_strided"], None, None, *stats, -1, -1.0, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_normalize(
                        a["x64"], None, None, *stats, -1, 1e-3, a["readonly64"]
                    ),
                ),
            ],
        ),
        "batch_norm_grad_sums": (
            [lambda: _core.batch_norm_grad_sums(a["x64_swapped"], a["x64"], a["gamma64"], -1)],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_grad_sums(
                        a["x64_swapped"], a["rows64"], a["var64"], -1
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_grad_sums(a["x64"], a["x64"], a["rows64"], -1),
                ),
            ],
        ),
        "batch_norm_backward_apply": (
            [
                lambda: _core.batch_norm_backward_apply(
                    a["x64"],
                    a["x64_swapped"],
                    None,
                    *stats,
                    *stats,
                    120,
                    -1,
                    1e-3,
                    a["out_nhwc64"],
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_backward_apply(
                        a["x64"], a["x64_swapped"], None, *stats, *stats, 5, -1, 1e-3, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_backward_apply(
                        a["x64"], a["x64"], None, *stats, *stats, 60, -1, 1e-3, a["readonly64"]
                    ),
                ),
            ],
        ),
    }
