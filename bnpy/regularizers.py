"""Weight regularizers (Keras 2.0's ``keras/regularizers.py``).

``L1L2(l1, l2)`` adds to the training loss, once per step,

    penalty(w) = l1·Σ|w| + l2·Σw²        (no ½, not divided by the batch size)

and so contributes ``l1·sign(w) + 2·l2·w`` to the gradient of ``w``. The penalty is part of the
reported training ``loss``, as in Keras. Attach with ``kernel_regularizer=`` (Keras 1:
``W_regularizer=``), ``bias_regularizer=``, ``gamma_regularizer=``/``beta_regularizer=`` or
``activity_regularizer=`` (applied to the layer's output, summed over the whole batch).
"""

import numpy as np


class Regularizer:
    def __call__(self, x):
        """The penalty (a Python float) for the array ``x``."""
        raise NotImplementedError

    def gradient(self, x):
        """d penalty / dx, an array shaped like ``x``."""
        raise NotImplementedError


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = float(l1)
        self.l2 = float(l2)

    def __call__(self, x):
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.abs(x).sum(dtype=np.float64))
        if self.l2:
            penalty += self.l2 * float(np.square(x, dtype=np.float64).sum())
        return penalty

    def gradient(self, x):
        grad = np.zeros_like(x)
        if self.l1:
            grad += np.asarray(self.l1, x.dtype) * np.sign(x)
        if self.l2:
            grad += np.asarray(2.0 * self.l2, x.dtype) * x
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        return "L1L2(l1={}, l2={})".format(self.l1, self.l2)


def l1(l=0.01):  # noqa: E741 (Keras 2.0's keyword name)
    return L1L2(l1=l)


def l2(l=0.01):  # noqa: E741 (Keras 2.0's keyword name)
    return L1L2(l2=l)


def l1_l2(l1=0.01, l2=0.01):
    return L1L2(l1=l1, l2=l2)


def get(identifier):
    """None, a Regularizer, or a name ('l1', 'l2', 'l1_l2' with their default strengths)."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in ("l1", "l2", "l1_l2"):
        return globals()[identifier]()
    raise ValueError(
        "Could not interpret regularizer identifier: {!r}; expected None, a "
        "bnpy.regularizers.Regularizer or 'l1', 'l2', 'l1_l2'".format(identifier)
    )
