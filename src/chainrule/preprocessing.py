"""Input preprocessing and label mapping that a saved model carries with it.

``Preprocessor`` turns raw inputs (for example uint8 images of shape ``(n, 28, 28)``) into
the float matrix ``(n, features)`` the network reads. ``LabelMapping`` turns a data set's
own labels (``1..26`` for EMNIST letters, or strings) into the class indices ``0..K-1``
the output layer uses, and back. Both are fitted on the training split only and convert
to and from plain dictionaries, so ``model.json`` can store them and evaluation and
prediction apply exactly the training-time steps.
"""

from __future__ import annotations

from typing import Any

from chainrule.backend import xp

__all__ = ["LabelMapping", "Preprocessor"]

_FLOAT_DTYPES = ("float32", "float64")

# Rows per block when computing feature statistics, so that float64 temporaries stay near
# 25 MB for 784 features instead of the whole data set (376 MB for MNIST's training split).
_STATISTICS_BLOCK_ROWS = 4096

# Pixel values of uint8 images run from 0 to 255; dividing by 255 maps them onto [0, 1].
_UINT8_DIVISOR = 255.0


class Preprocessor:
    """Flatten, cast, scale and optionally standardise inputs.

    ``transform`` applies, in order:

    1. flatten ``(n, d1, d2, ...)`` to ``(n, d1 * d2 * ...)``;
    2. cast to ``dtype``;
    3. divide by 255 when ``scale`` is on and the training data passed to ``fit`` were
       uint8, mapping pixel values onto [0, 1];
    4. when ``standardize`` is on, subtract each feature's training mean and divide by its
       training standard deviation. A constant feature (MNIST's black border) gets
       standard deviation 1, so it becomes 0 instead of a division by zero.

    The caller's array is never modified, and all arithmetic happens after the cast, so
    uint8 values never wrap around.

    Parameters
    ----------
    scale : bool, default True
        Divide uint8 training data (and all later inputs) by 255.
    standardize : bool, default False
        Standardise each feature with the mean and population standard deviation
        (``ddof=0``) of the training data, computed after scaling.
    dtype : {"float32", "float64"}, default "float32"
        The dtype ``transform`` returns.

    Attributes
    ----------
    n_features : int or None
        Features per sample seen by ``fit``; None before fitting.
    scale_divisor : float or None
        255.0 when fitted on uint8 data with ``scale`` on, None otherwise. The decision is
        made once, on the training data: later inputs are divided by the same value
        whatever their dtype, so uint8 images and the same values as floats give the same
        output.
    mean, std : ndarray of float64, shape (n_features,), or None
        Training statistics after scaling, when ``standardize`` is on.

    Notes
    -----
    Pass later inputs in the same units as the training data: a model fitted on uint8
    pixels expects pixel values 0..255 (uint8 or float), not values already divided by 255.
    """

    def __init__(self, *, scale: bool = True, standardize: bool = False, dtype: str = "float32"):
        _check_bool("scale", scale)
        _check_bool("standardize", standardize)
        self.scale = scale
        self.standardize = standardize
        self.dtype = _check_float_dtype(dtype)
        self.n_features: int | None = None
        self.scale_divisor: float | None = None
        self.mean: xp.ndarray | None = None
        self.std: xp.ndarray | None = None

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` (or ``from_dict``) has set the training parameters."""
        return self.n_features is not None

    def fit(self, X: xp.ndarray) -> Preprocessor:
        """Learn the scaling decision and, if requested, the feature statistics.

        Parameters
        ----------
        X : array_like, shape (n_samples, ...)
            Training inputs, samples first; uint8 images or any real numbers.

        Returns
        -------
        Preprocessor
            ``self``.
        """
        X = _check_inputs(X, "X")
        if X.shape[0] == 0:
            raise ValueError("fit needs at least 1 sample, got X with 0 samples")
        flat = X.reshape(X.shape[0], -1)
        if flat.shape[1] == 0:
            raise ValueError(f"fit needs at least 1 feature, got X of shape {X.shape}")
        if X.dtype.kind == "f" and not xp.isfinite(flat).all():
            raise ValueError(
                "X contains NaN or infinity; remove or replace those values before fit"
            )

        self.n_features = int(flat.shape[1])
        self.scale_divisor = _UINT8_DIVISOR if self.scale and X.dtype == xp.uint8 else None
        if self.standardize:
            self.mean, self.std = _feature_statistics(flat, self.scale_divisor)
        else:
            self.mean, self.std = None, None
        return self

    def transform(self, X: xp.ndarray) -> xp.ndarray:
        """Apply the fitted steps to ``X`` and return a new array.

        Parameters
        ----------
        X : array_like, shape (n_samples, ...)
            Inputs whose trailing dimensions hold ``n_features`` values, for example
            ``(n, 28, 28)`` or ``(n, 784)`` for a model fitted on 28x28 images.

        Returns
        -------
        ndarray of ``dtype``, shape (n_samples, n_features)
            C-contiguous, never a view of ``X``.
        """
        if not self.fitted:
            raise RuntimeError(
                "this Preprocessor is not fitted yet; call fit(X_train) first, or rebuild "
                "a saved one with Preprocessor.from_dict"
            )
        X = _check_inputs(X, "X")
        flat = X.reshape(X.shape[0], -1)
        if flat.shape[1] != self.n_features:
            raise ValueError(
                f"X has {flat.shape[1]} features per sample (shape {X.shape}), but this "
                f"Preprocessor was fitted on {self.n_features}"
            )

        dtype = xp.dtype(self.dtype)
        output = xp.empty(flat.shape, dtype=dtype)
        # Overflow in the cast (1e300 to float32) is reported below as a ValueError.
        with xp.errstate(over="ignore", invalid="ignore"):
            if self.scale_divisor is None:
                xp.copyto(output, flat, casting="unsafe")
            else:
                # One pass: the division reads X and writes the float result, so no uint8
                # intermediate exists and the caller's array is never written.
                xp.divide(flat, dtype.type(self.scale_divisor), out=output, casting="unsafe")
            if self.standardize:
                output -= self.mean.astype(dtype)
                output /= self.std.astype(dtype)

        if X.dtype.kind == "f" and not xp.isfinite(output).all():
            raise ValueError(
                f"X contains NaN or infinity, or values too large for {self.dtype}; "
                "remove or replace those values"
            )
        return output

    def fit_transform(self, X: xp.ndarray) -> xp.ndarray:
        """Fit on ``X`` and return ``transform(X)``."""
        return self.fit(X).transform(X)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings and fitted parameters as a JSON-serialisable dictionary."""
        return {
            "scale": self.scale,
            "standardize": self.standardize,
            "dtype": self.dtype,
            "n_features": self.n_features,
            "scale_divisor": self.scale_divisor,
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        """Rebuild a Preprocessor from ``to_dict``'s output.

        Raises
        ------
        ValueError
            If a key is missing or a value is inconsistent, for example a ``mean`` whose
            length differs from ``n_features``.
        """
        if not isinstance(data, dict):
            raise TypeError(f"Preprocessor.from_dict expects a dict, got {type(data).__name__}")
        missing = [
            key for key in ("scale", "standardize", "dtype", "n_features") if key not in data
        ]
        if missing:
            raise ValueError(
                f"preprocessing settings lack the keys {missing}; got keys {sorted(data)}"
            )
        preprocessor = cls(
            scale=data["scale"], standardize=data["standardize"], dtype=data["dtype"]
        )

        n_features = data["n_features"]
        if n_features is None:
            return preprocessor
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer or None, got {n_features!r}")
        preprocessor.n_features = n_features

        divisor = data.get("scale_divisor")
        if divisor is not None:
            if not preprocessor.scale or divisor != _UINT8_DIVISOR:
                raise ValueError(
                    f"scale_divisor must be None or 255.0 with scale on, got {divisor!r} "
                    f"with scale={preprocessor.scale}"
                )
            preprocessor.scale_divisor = float(divisor)

        if preprocessor.standardize:
            preprocessor.mean = _statistics_from_list(data.get("mean"), "mean", n_features)
            preprocessor.std = _statistics_from_list(data.get("std"), "std", n_features)
            if not (preprocessor.std > 0).all():
                raise ValueError("std must be positive for every feature")
        return preprocessor

    def __repr__(self) -> str:
        state = f", n_features={self.n_features}" if self.fitted else ", not fitted"
        return (
            f"Preprocessor(scale={self.scale}, standardize={self.standardize}, "
            f"dtype={self.dtype!r}{state})"
        )


class LabelMapping:
    """A bijection between a data set's labels and the class indices ``0..K-1``.

    Parameters
    ----------
    classes : array_like, shape (K,)
        Distinct labels, integers or strings; ``classes[i]`` is the label of class index
        ``i``. ``from_labels`` builds the mapping from data, with classes sorted.

    Attributes
    ----------
    classes : ndarray of int64 or str, shape (K,)
    """

    def __init__(self, classes: xp.ndarray):
        classes = _as_label_array(classes, "classes")
        if classes.shape[0] == 0:
            raise ValueError("a LabelMapping needs at least 1 class, got 0")
        if xp.unique(classes).shape[0] != classes.shape[0]:
            values, counts = xp.unique(classes, return_counts=True)
            raise ValueError(f"classes must be distinct; repeated: {values[counts > 1].tolist()}")
        # A private, read-only copy: the mapping travels with a model, so no caller may
        # change it through the array they passed in.
        self.classes = classes.copy()
        self.classes.flags.writeable = False
        self._order = xp.argsort(classes, kind="stable")
        self._sorted_classes = classes[self._order]

    @classmethod
    def from_labels(cls, labels: xp.ndarray) -> LabelMapping:
        """Build the mapping of the distinct values in ``labels``, sorted ascending."""
        labels = _as_label_array(labels, "labels")
        if labels.shape[0] == 0:
            raise ValueError("cannot build a label mapping from 0 labels")
        return cls(xp.unique(labels))

    @property
    def n_classes(self) -> int:
        """The number of classes K."""
        return int(self.classes.shape[0])

    def __len__(self) -> int:
        return self.n_classes

    def encode(self, labels: xp.ndarray) -> xp.ndarray:
        """Map labels to class indices.

        Parameters
        ----------
        labels : array_like, shape (n,)

        Returns
        -------
        ndarray of int64, shape (n,)
            Values in ``0..K-1``.

        Raises
        ------
        ValueError
            If a label is not one of ``classes``; the message lists the unknown labels.
        """
        labels = _as_label_array(labels, "labels")
        if labels.dtype.kind != self.classes.dtype.kind:
            unknown = xp.unique(labels)
        else:
            positions = xp.searchsorted(self._sorted_classes, labels)
            positions = xp.minimum(positions, self.n_classes - 1)
            known = self._sorted_classes[positions] == labels
            if known.all():
                return self._order[positions].astype(xp.int64)
            unknown = xp.unique(labels[~known])
        raise ValueError(
            f"unknown labels {_preview(unknown)} ({unknown.shape[0]} distinct); the known "
            f"classes are {_preview(self.classes)}. Labels must be classes of the training data."
        )

    def decode(self, indices: xp.ndarray) -> xp.ndarray:
        """Map class indices ``0..K-1`` back to labels.

        Parameters
        ----------
        indices : array_like of int, any shape

        Returns
        -------
        ndarray, same shape as ``indices``
            Labels with the dtype of ``classes``.
        """
        indices = xp.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"class indices must be integers, got dtype {indices.dtype}")
        outside = (indices < 0) | (indices >= self.n_classes)
        if outside.any():
            raise ValueError(
                f"class indices must lie in 0..{self.n_classes - 1}, got "
                f"{_preview(xp.unique(indices[outside]))}"
            )
        return self.classes[indices]

    def to_dict(self) -> dict[str, Any]:
        """Return the mapping as a JSON-serialisable dictionary."""
        label_type = "int" if self.classes.dtype.kind == "i" else "str"
        return {"label_type": label_type, "classes": self.classes.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelMapping:
        """Rebuild a LabelMapping from ``to_dict``'s output."""
        if not isinstance(data, dict) or "classes" not in data:
            raise ValueError(
                f"a label mapping needs a dict with a 'classes' list, got {data!r:.200}"
            )
        label_type = data.get("label_type", "int")
        classes = data["classes"]
        if label_type == "int":
            if not all(isinstance(value, int) and not isinstance(value, bool) for value in classes):
                raise ValueError(f"label_type 'int' needs integer classes, got {classes!r:.200}")
            return cls(xp.asarray(classes, dtype=xp.int64))
        if label_type == "str":
            if not all(isinstance(value, str) for value in classes):
                raise ValueError(f"label_type 'str' needs string classes, got {classes!r:.200}")
            return cls(xp.asarray(classes, dtype=str))
        raise ValueError(f"label_type must be 'int' or 'str', got {label_type!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelMapping):
            return NotImplemented
        return self.classes.dtype.kind == other.classes.dtype.kind and xp.array_equal(
            self.classes, other.classes
        )

    __hash__ = None

    def __repr__(self) -> str:
        return f"LabelMapping(classes={_preview(self.classes)})"


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _check_float_dtype(dtype: object) -> str:
    try:
        name = xp.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {_FLOAT_DTYPES}, got {dtype!r}")
    return name


def _check_inputs(X: object, name: str) -> xp.ndarray:
    X = xp.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must contain real numbers, got dtype {X.dtype}")
    if X.ndim < 2:
        raise ValueError(
            f"{name} must have samples along its first axis and at least 2 dimensions, got "
            f"shape {X.shape}; for a single sample use {name}.reshape(1, -1)"
        )
    return X


def _feature_statistics(flat: xp.ndarray, divisor: float | None) -> tuple[xp.ndarray, xp.ndarray]:
    """Return the float64 mean and standard deviation of each column, after scaling."""
    n_samples, n_features = flat.shape
    total = xp.zeros(n_features)
    for start in range(0, n_samples, _STATISTICS_BLOCK_ROWS):
        total += flat[start : start + _STATISTICS_BLOCK_ROWS].sum(axis=0, dtype=xp.float64)
    mean = total / n_samples

    # Second pass over the deviations: one pass of E[x^2] - E[x]^2 loses most digits
    # when a feature's variance is small next to its mean.
    squared_deviations = xp.zeros(n_features)
    for start in range(0, n_samples, _STATISTICS_BLOCK_ROWS):
        deviations = flat[start : start + _STATISTICS_BLOCK_ROWS].astype(xp.float64) - mean
        squared_deviations += xp.einsum("ij,ij->j", deviations, deviations)
    std = xp.sqrt(squared_deviations / n_samples)

    if divisor is not None:
        mean /= divisor
        std /= divisor
    # A constant feature has std 0, or a rounding residue near 1e-17 when its value has no
    # exact binary form. Both count as constant and get std 1.
    constant = std <= 10 * xp.finfo(xp.float64).eps * xp.maximum(1.0, xp.abs(mean))
    std[constant] = 1.0
    return mean, std


def _statistics_from_list(values: object, name: str, n_features: int) -> xp.ndarray:
    if values is None:
        raise ValueError(
            f"standardize is on, so {name} must be a list of {n_features} numbers, got None"
        )
    array = xp.asarray(values, dtype=xp.float64)
    if array.shape != (n_features,) or not xp.isfinite(array).all():
        raise ValueError(
            f"{name} must be a list of {n_features} finite numbers, got shape {array.shape}"
        )
    return array


def _as_label_array(values: object, name: str) -> xp.ndarray:
    """Return labels as a 1-D int64 or str array, rejecting floats with fractions."""
    array = xp.asarray(values)
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be 1-dimensional, got shape {array.shape}; pass one label per "
            f"sample, for example {name}.ravel() for a column of labels"
        )
    kind = array.dtype.kind
    if kind == "O":
        if all(isinstance(value, str) for value in array):
            return array.astype(str)
        if all(
            isinstance(value, int | xp.integer) and not isinstance(value, bool) for value in array
        ):
            return array.astype(xp.int64)
        raise TypeError(f"{name} must be all integers or all strings, got mixed Python objects")
    if kind == "b":
        raise TypeError(f"{name} must be integers or strings, got booleans; use {name}.astype(int)")
    if kind in "iu":
        return array.astype(xp.int64)
    if kind == "f":
        if not xp.isfinite(array).all() or (array != xp.round(array)).any():
            raise ValueError(
                f"{name} must be class labels (integers or strings), got non-integer "
                f"floats such as {_preview(array[array != xp.round(array)][:5])}"
            )
        return array.astype(xp.int64)
    if kind == "S":
        return array.astype(str)
    if kind == "U":
        return array
    raise TypeError(f"{name} must be integers or strings, got dtype {array.dtype}")


def _preview(values: xp.ndarray, limit: int = 10) -> str:
    text = ", ".join(repr(value) for value in values[:limit].tolist())
    if values.shape[0] > limit:
        text += f", ... ({values.shape[0] - limit} more)"
    return f"[{text}]"
