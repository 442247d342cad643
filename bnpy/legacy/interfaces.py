"""Keras-1 argument names accepted by Keras-2 layers (Keras 2.0's ``keras/legacy/interfaces.py``).

Each converter: runs an optional preprocessor, checks the number of positional arguments,
converts values (``dim_ordering``: 'tf' → 'channels_last', 'th' → 'channels_first',
'default' → None), renames keywords (old and new name together is a TypeError), and, if
anything was converted, warns with Keras's text, e.g.::

    UserWarning: Update your `Conv2D` call to the Keras 2 API: `Conv2D(96, (11, 11),
    input_shape=(32, 32, 3..., padding="same", data_format="channels_last")`

(each shown value cut to 10 characters followed by '...'; renamed keywords move to the end).
"""

import functools
import warnings

import numpy as np

_DIM_ORDERING = {"dim_ordering": {"tf": "channels_last", "th": "channels_first", "default": None}}


def _show(value):
    if isinstance(value, str):
        return '"' + value + '"'
    text = "array" if isinstance(value, np.ndarray) else str(value)
    return text[:10] + "..." if len(text) > 10 else text


def _signature(object_name, args, kwargs):
    parts = [_show(v) for v in args] + [k + "=" + _show(v) for k, v in kwargs.items()]
    return "`" + object_name + "(" + ", ".join(parts) + ")`"


def raise_duplicate_arg_error(old_arg, new_arg):
    raise TypeError(
        "For the `" + new_arg + "` argument, the layer received both the legacy "
        "keyword argument `" + old_arg + "` and the Keras 2 keyword argument. "
        "Stick to the latter!"
    )


def generate_legacy_interface(
    allowed_positional_args=None,
    conversions=None,
    preprocessor=None,
    value_conversions=None,
    object_type="class",
):
    check_positional_args = allowed_positional_args is not None
    allowed_positional_args = allowed_positional_args or []
    conversions = conversions or []
    value_conversions = value_conversions or {}

    def legacy_support(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            object_name = type(args[0]).__name__ if object_type == "class" else func.__name__
            if preprocessor:
                args, kwargs, converted = preprocessor(args, kwargs)
            else:
                converted = []
            if check_positional_args and len(args) > len(allowed_positional_args) + 1:
                raise TypeError(
                    "`"
                    + object_name
                    + "` can accept only "
                    + str(len(allowed_positional_args))
                    + " positional arguments "
                    + str(tuple(allowed_positional_args))
                    + ", but you passed the "
                    "following positional arguments: " + str(list(args[1:]))
                )
            for key, table in value_conversions.items():
                if key in kwargs:
                    old_value = kwargs[key]
                    if isinstance(old_value, str) and old_value in table:
                        kwargs[key] = table[old_value]
            for old_name, new_name in conversions:
                if old_name in kwargs:
                    value = kwargs.pop(old_name)
                    if new_name in kwargs:
                        raise_duplicate_arg_error(old_name, new_name)
                    kwargs[new_name] = value
                    converted.append((new_name, old_name))
            if converted:
                warnings.warn(
                    "Update your `"
                    + object_name
                    + "` call to the Keras 2 API: "
                    + _signature(object_name, args[1:], kwargs),
                    stacklevel=2,
                )
            return func(*args, **kwargs)

        wrapper._original_function = func
        return wrapper

    return legacy_support


legacy_dense_support = generate_legacy_interface(
    allowed_positional_args=["units"],
    conversions=[
        ("output_dim", "units"),
        ("init", "kernel_initializer"),
        ("W_regularizer", "kernel_regularizer"),
        ("b_regularizer", "bias_regularizer"),
        ("W_constraint", "kernel_constraint"),
        ("b_constraint", "bias_constraint"),
        ("bias", "use_bias"),
    ],
)

legacy_dropout_support = generate_legacy_interface(
    allowed_positional_args=["rate", "noise_shape", "seed"], conversions=[("p", "rate")]
)


def conv2d_args_preprocessor(args, kwargs):
    """Fold Keras-1's ``nb_row, nb_col`` into ``kernel_size``."""
    converted = []
    if len(args) > 4:
        raise TypeError("Layer can receive at most 3 positional arguments.")
    if len(args) == 4:
        if isinstance(args[2], int) and isinstance(args[3], int):
            for keyword in ("padding", "strides", "data_format"):
                if keyword in kwargs:
                    raise ValueError(
                        "It seems that you are using the Keras 2 and you are passing "
                        "both `kernel_size` and `strides` as integer positional "
                        "arguments. For safety reasons, this is disallowed. Pass "
                        "`strides` as a keyword argument instead."
                    )
            args = (args[0], args[1], (args[2], args[3]))
            converted.append(("kernel_size", "nb_row/nb_col"))
    elif len(args) == 3 and isinstance(args[2], int):
        if "nb_col" in kwargs:
            args = (args[0], args[1], (args[2], kwargs.pop("nb_col")))
            converted.append(("kernel_size", "nb_row/nb_col"))
    elif len(args) == 2:
        if "nb_row" in kwargs and "nb_col" in kwargs:
            args = (args[0], args[1], (kwargs.pop("nb_row"), kwargs.pop("nb_col")))
            converted.append(("kernel_size", "nb_row/nb_col"))
    elif len(args) == 1:
        if "nb_row" in kwargs and "nb_col" in kwargs:
            kwargs["kernel_size"] = (kwargs.pop("nb_row"), kwargs.pop("nb_col"))
            converted.append(("kernel_size", "nb_row/nb_col"))
    return args, kwargs, converted


legacy_conv2d_support = generate_legacy_interface(
    allowed_positional_args=["filters", "kernel_size"],
    conversions=[
        ("nb_filter", "filters"),
        ("subsample", "strides"),
        ("border_mode", "padding"),
        ("dim_ordering", "data_format"),
        ("init", "kernel_initializer"),
        ("W_regularizer", "kernel_regularizer"),
        ("b_regularizer", "bias_regularizer"),
        ("W_constraint", "kernel_constraint"),
        ("b_constraint", "bias_constraint"),
        ("bias", "use_bias"),
    ],
    value_conversions=_DIM_ORDERING,
    preprocessor=conv2d_args_preprocessor,
)

legacy_pooling2d_support = generate_legacy_interface(
    allowed_positional_args=["pool_size", "strides", "padding"],
    conversions=[("border_mode", "padding"), ("dim_ordering", "data_format")],
    value_conversions=_DIM_ORDERING,
)


def zeropadding2d_args_preprocessor(args, kwargs):
    """Keras-1's dict ``{top_pad, bottom_pad, left_pad, right_pad}`` → ((top, bottom), (left, right))."""
    converted = []

    def from_dict(d):
        return (
            (d.get("top_pad", 0), d.get("bottom_pad", 0)),
            (d.get("left_pad", 0), d.get("right_pad", 0)),
        )

    if isinstance(kwargs.get("padding"), dict):
        if set(kwargs["padding"]) <= {"top_pad", "bottom_pad", "left_pad", "right_pad"}:
            kwargs["padding"] = from_dict(kwargs["padding"])
            converted.append(("padding", "padding"))
    elif len(args) == 2 and isinstance(args[1], dict):
        if set(args[1]) <= {"top_pad", "bottom_pad", "left_pad", "right_pad"}:
            args = (args[0], from_dict(args[1]))
            converted.append(("padding", "padding"))
    return args, kwargs, converted


legacy_zeropadding2d_support = generate_legacy_interface(
    allowed_positional_args=["padding"],
    conversions=[("dim_ordering", "data_format")],
    value_conversions=_DIM_ORDERING,
    preprocessor=zeropadding2d_args_preprocessor,
)


def batchnorm_args_preprocessor(args, kwargs):
    """Keras-1's ``mode``: 0 is dropped silently; 1 and 2 no longer exist (TypeError)."""
    if len(args) > 1:
        raise TypeError(
            "The `BatchNormalization` layer does not accept positional arguments. "
            "Use keyword arguments instead."
        )
    if "mode" in kwargs:
        value = kwargs.pop("mode")
        if value != 0:
            raise TypeError(
                "The `mode` argument of `BatchNormalization` no longer exists. "
                "`mode=1` and `mode=2` are no longer supported."
            )
    return args, kwargs, []


legacy_batchnorm_support = generate_legacy_interface(
    allowed_positional_args=[],
    conversions=[("beta_init", "beta_initializer"), ("gamma_init", "gamma_initializer")],
    preprocessor=batchnorm_args_preprocessor,
)


def generator_methods_args_preprocessor(args, kwargs):
    """``samples_per_epoch`` → ``steps_per_epoch = samples_per_epoch // generator.batch_size``."""
    converted = []
    if len(args) < 3 and "samples_per_epoch" in kwargs:
        samples_per_epoch = kwargs.pop("samples_per_epoch")
        generator = args[1] if len(args) > 1 else kwargs["generator"]
        if hasattr(generator, "batch_size"):
            kwargs["steps_per_epoch"] = samples_per_epoch // generator.batch_size
        else:
            kwargs["steps_per_epoch"] = samples_per_epoch
        converted.append(("samples_per_epoch", "steps_per_epoch"))
    if {"samples_per_epoch", "val_samples", "nb_epoch", "nb_val_samples", "nb_worker"} & set(
        kwargs
    ) or converted:
        warnings.warn(
            "The semantics of the Keras 2 argument `steps_per_epoch` is not the same as "
            "the Keras 1 argument `samples_per_epoch`. `steps_per_epoch` is the number "
            "of batches to draw from the generator at each epoch. Basically "
            "steps_per_epoch = samples_per_epoch/batch_size. Similarly "
            "`nb_val_samples`->`validation_steps` and `val_samples`->`steps` arguments "
            "have changed. Update your method calls accordingly.",
            stacklevel=3,
        )
    return args, kwargs, converted


legacy_generator_methods_support = generate_legacy_interface(
    allowed_positional_args=["generator", "steps_per_epoch", "epochs"],
    conversions=[
        ("samples_per_epoch", "steps_per_epoch"),
        ("val_samples", "steps"),
        ("nb_epoch", "epochs"),
        ("nb_val_samples", "validation_steps"),
        ("nb_worker", "workers"),
        ("pickle_safe", "use_multiprocessing"),
        ("max_q_size", "max_queue_size"),
    ],
    preprocessor=generator_methods_args_preprocessor,
    object_type="method",
)
