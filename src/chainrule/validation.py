"""Checks of user input at the public boundary, with errors that name the value and the fix.

The network, the trainer and the estimator call these once per public call, so the
per-batch inner loop runs on data that is already known to be valid.
"""

from __future__ import annotations

import numbers

from chainrule.backend import xp


def check_positive_int(name: str, value) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_features(X, n_features: int, dtype, *, name: str = "X"):
    """Return ``X`` as a C-contiguous ``(batch, n_features)`` array of ``dtype``.

    Raises ``ValueError`` for a 1-D sample (with a reshape hint), an empty batch, a wrong
    feature count, or NaN or infinite values. The caller's array is never modified; it is
    copied only when its dtype or layout has to change.
    """
    try:
        array = xp.asarray(X)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} could not be converted to a numeric array: {error}") from None
    if array.dtype == object or not (
        xp.issubdtype(array.dtype, xp.number) or array.dtype == bool
    ):
        raise ValueError(f"{name} must be numeric, got an array of dtype {array.dtype}")
    if array.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D (batch, features), got a 1-D array of shape {array.shape}; "
            f"for a single sample use {name}.reshape(1, -1)"
        )
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (batch, features), got {array.ndim} dimensions with shape "
            f"{array.shape}; flatten each sample first, e.g. {name}.reshape(len({name}), -1)"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} contains 0 samples (shape {array.shape}); at least 1 is needed")
    if array.shape[1] != n_features:
        raise ValueError(
            f"{name} has {array.shape[1]} features per sample, but the network expects "
            f"{n_features} (its first layer size)"
        )
    array = xp.ascontiguousarray(array, dtype=dtype)
    check_finite(array, name=name)
    return array


def check_finite(array, *, name: str = "X") -> None:
    """Raise ``ValueError`` naming the first position of a NaN or infinite value, if any."""
    # One reduction over the array is much cheaper than isfinite() on every element,
    # and NaN or ±inf anywhere makes the sum non-finite. The sum runs in the array's own
    # dtype, because a float64 sum of 47 million float32 values takes 3.6 times as long.
    # A sum that overflows only sends the check to the exact search below.
    with xp.errstate(over="ignore", invalid="ignore"):
        total = array.sum()
    if xp.isfinite(total):
        return
    bad = xp.argwhere(~xp.isfinite(array))
    if len(bad) == 0:
        # The sum itself overflowed; the values are finite.
        return
    position = tuple(int(i) for i in bad[0])
    raise ValueError(
        f"{name} contains {len(bad)} NaN or infinite value(s), the first at index {position} "
        f"({array[position]}); remove or impute them before training or prediction"
    )


def check_labels(labels, n_classes: int, n_samples: int | None = None):
    """Return ``labels`` as an int64 array of class indices ``0..n_classes-1``.

    Float labels are accepted when every value is a whole number. Raises ``ValueError``
    for non-integer labels, labels out of range, a shape other than ``(batch,)``, or a
    count that differs from ``n_samples``.
    """
    array = xp.asarray(labels)
    if array.ndim != 1:
        raise ValueError(
            f"labels must be a 1-D array of class indices, got shape {array.shape}; "
            "pass class indices (not one-hot rows)"
        )
    if n_samples is not None and array.shape[0] != n_samples:
        raise ValueError(f"got {array.shape[0]} labels for {n_samples} samples; they must match")
    if array.dtype == bool or not xp.issubdtype(array.dtype, xp.number):
        raise ValueError(
            f"labels must be integers 0..{n_classes - 1}, got dtype {array.dtype}; "
            "map other label types to indices first (chainrule.MLPClassifier does this)"
        )
    if not xp.issubdtype(array.dtype, xp.integer):
        if not xp.all(xp.isfinite(array)):
            raise ValueError(f"labels must be integers 0..{n_classes - 1}, got NaN or infinity")
        fractional = array[array != xp.round(array)]
        if fractional.size:
            raise ValueError(
                f"labels must be integers 0..{n_classes - 1}, got non-integer value "
                f"{fractional[0].item()!r}"
            )
    array = array.astype(xp.int64)
    outside = xp.unique(array[(array < 0) | (array >= n_classes)])
    if outside.size:
        shown = ", ".join(str(v) for v in outside[:10])
        raise ValueError(
            f"labels must be in 0..{n_classes - 1} (the network has {n_classes} output units), "
            f"found {shown}; for other label values use chainrule.MLPClassifier or map them "
            "to 0..K-1"
        )
    return array
