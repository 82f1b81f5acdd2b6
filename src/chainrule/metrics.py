"""Classification metrics computed from labels and predictions, without scikit-learn.

Every metric here is a function of the confusion matrix ``C``, where ``C[i, j]`` counts the
examples of true class ``i`` predicted as class ``j``. For class ``c``:

* precision ``C[c, c] / Σ_i C[i, c]`` (correct among those predicted as ``c``),
* recall ``C[c, c] / Σ_j C[c, j]`` (correct among the examples of ``c``), which is also
  the class's accuracy,
* F1 ``2 C[c, c] / (2 C[c, c] + false positives + false negatives)``, the harmonic mean
  of the two.

A ratio with a zero denominator counts as 0. The macro averages are the unweighted means
over the classes that occur in the true labels or in the predictions. Both rules are
scikit-learn's ``average="macro", zero_division=0`` (scikit-learn 1.6), so the numbers
agree with ``sklearn.metrics.precision_recall_fscore_support``.

:func:`evaluate` applies a network or a saved model to a data set and returns all of
these together with the mean data loss and the logits.
"""

from __future__ import annotations

from typing import Any

from chainrule.backend import xp

__all__ = [
    "accuracy",
    "confusion_matrix",
    "precision_recall_f1",
    "per_class_accuracy",
    "evaluate",
    "to_json_dict",
]

# Rows per forward pass in evaluate(), so the hidden activations of a large data set never
# sit in memory all at once (8192 rows x 512 float32 units is 16 MB per layer).
_EVALUATION_BATCH_ROWS = 8192


def _as_label_vector(name: str, labels) -> Any:
    array = xp.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    if array.size == 0:
        # An empty list arrives as float64; its dtype carries no information.
        return array.astype(xp.int64)
    if not xp.issubdtype(array.dtype, xp.integer):
        raise ValueError(
            f"{name} must hold integer class indices, got dtype {array.dtype}; "
            "map labels to 0..K-1 first"
        )
    if array.size and int(array.min()) < 0:
        raise ValueError(f"{name} must hold class indices >= 0, found {int(array.min())}")
    return array.astype(xp.int64, copy=False)


def _check_pair(y_true, y_pred) -> tuple[Any, Any]:
    y_true = _as_label_vector("y_true", y_true)
    y_pred = _as_label_vector("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {y_true.shape[0]} and "
            f"{y_pred.shape[0]}"
        )
    if y_true.size == 0:
        raise ValueError("y_true and y_pred are empty; metrics need at least 1 example")
    return y_true, y_pred


def _safe_ratio(numerator, denominator):
    """Return ``numerator / denominator`` elementwise, with 0 where the denominator is 0."""
    numerator = xp.asarray(numerator, dtype=xp.float64)
    denominator = xp.asarray(denominator, dtype=xp.float64)
    result = xp.zeros_like(numerator)
    xp.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


def accuracy(y_true, y_pred) -> float:
    """Return the fraction of examples whose predicted class equals the true class.

    Parameters
    ----------
    y_true, y_pred : int array ``(n,)``
        Class indices.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(xp.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, n_classes: int | None = None):
    """Count the examples of each true class (rows) predicted as each class (columns).

    Parameters
    ----------
    y_true, y_pred : int array ``(n,)``
        Class indices ``0..n_classes-1``.
    n_classes : int, optional
        ``K``, the size of the matrix. Defaults to the largest index seen plus one.

    Returns
    -------
    int64 array ``(K, K)``
        ``C[i, j]`` is the number of examples of class ``i`` predicted as class ``j``.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    largest = int(max(y_true.max(), y_pred.max()))
    if n_classes is None:
        n_classes = largest + 1
    elif isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    elif largest >= n_classes:
        raise ValueError(
            f"found class index {largest}, but n_classes is {n_classes} "
            f"(indices 0..{n_classes - 1})"
        )
    # Each (true, predicted) pair maps to one cell of the flattened matrix, so a single
    # bincount fills the whole matrix without a Python loop.
    cells = xp.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return cells.reshape(n_classes, n_classes).astype(xp.int64)


def _per_class_scores(confusion) -> tuple[Any, Any, Any, Any]:
    """Return per-class precision, recall, F1 and the mask of classes that occur."""
    confusion = xp.asarray(confusion, dtype=xp.int64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {confusion.shape}")
    true_positives = xp.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = _safe_ratio(true_positives, predicted)
    recall = _safe_ratio(true_positives, actual)
    # 2TP / (2TP + FP + FN) equals 2PR / (P + R) wherever both are defined, and it is the
    # form scikit-learn uses, so the zero-denominator cases agree as well.
    f1 = _safe_ratio(2 * true_positives, predicted + actual)
    occurring = (predicted + actual) > 0
    return precision, recall, f1, occurring


def precision_recall_f1(y_true, y_pred) -> tuple[float, float, float]:
    """Return the macro-averaged precision, recall and F1.

    The means run over the classes present in ``y_true`` or ``y_pred``, and a ratio with
    a zero denominator counts as 0, as in scikit-learn's ``average="macro",
    zero_division=0``.

    Parameters
    ----------
    y_true, y_pred : int array ``(n,)``
        Class indices.
    """
    confusion = confusion_matrix(y_true, y_pred)
    return _macro_scores(confusion)


def _macro_scores(confusion) -> tuple[float, float, float]:
    precision, recall, f1, occurring = _per_class_scores(confusion)
    return (
        float(precision[occurring].mean()),
        float(recall[occurring].mean()),
        float(f1[occurring].mean()),
    )


def per_class_accuracy(confusion):
    """Return each class's accuracy: the fraction of its examples predicted correctly.

    Parameters
    ----------
    confusion : int array ``(K, K)``
        A confusion matrix from :func:`confusion_matrix`.

    Returns
    -------
    float64 array ``(K,)``
        ``C[c, c] / Σ_j C[c, j]``; 0 for a class with no examples.
    """
    _, recall, _, _ = _per_class_scores(confusion)
    return recall


def _batched_logits(network, features):
    parts = [
        network.forward(features[start:start + _EVALUATION_BATCH_ROWS])
        for start in range(0, features.shape[0], _EVALUATION_BATCH_ROWS)
    ]
    return xp.concatenate(parts, axis=0)


def evaluate(model, X, y) -> dict[str, Any]:
    """Apply a network or a saved model to ``(X, y)`` and compute every metric.

    Parameters
    ----------
    model : chainrule.Network or chainrule.training.Model
        A ``Network`` takes features and class indices. A ``Model`` (what
        :func:`chainrule.load_model` returns) takes raw inputs, which its preprocessor
        transforms, and the data set's own labels, which its label mapping encodes.
    X : array
        ``(n, n_features)`` features for a ``Network``; raw inputs such as uint8
        ``(n, 28, 28)`` images for a ``Model``.
    y : array ``(n,)``
        Class indices ``0..K-1`` for a ``Network``; original labels for a ``Model``.

    Returns
    -------
    dict
        ``loss`` (float): mean data loss, without the L2 penalty;
        ``accuracy``, ``precision``, ``recall``, ``f1`` (float): accuracy and macro
        averages, see the module docstring;
        ``per_class_accuracy``: float64 array ``(K,)``;
        ``confusion_matrix``: int64 array ``(K, K)``, true classes as rows;
        ``logits``: array ``(n, K)`` in the network's dtype.
    """
    network, features, labels = _network_inputs(model, X, y)
    logits = _batched_logits(network, features)
    predictions = xp.argmax(logits, axis=1)

    confusion = confusion_matrix(labels, predictions, n_classes=network.n_classes)
    precision, recall, f1 = _macro_scores(confusion)
    return {
        "loss": float(network.loss_function.value(logits, labels)),
        "accuracy": accuracy(labels, predictions),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "per_class_accuracy": per_class_accuracy(confusion),
        "confusion_matrix": confusion,
        "logits": logits,
    }


def _network_inputs(model, X, y) -> tuple[Any, Any, Any]:
    """Return ``(network, features, class indices)`` for a Network or a saved Model."""
    # A Model is recognised by its attributes, so this module does not import the
    # training module, which sits above it.
    from chainrule.network import Network

    if isinstance(model, Network):
        network = model
        features = network.check_input(X)
        labels = network.check_labels(y, features.shape[0])
        return network, features, labels

    network = getattr(model, "network", None)
    if not isinstance(network, Network) or not hasattr(model, "transform"):
        raise TypeError(
            "model must be a chainrule.Network or a model from chainrule.load_model, "
            f"got {type(model).__name__}"
        )
    features = network.check_input(model.transform(X))
    mapping = getattr(model, "label_mapping", None)
    indices = mapping.encode(xp.asarray(y)) if mapping is not None else y
    labels = network.check_labels(indices, features.shape[0])
    return network, features, labels


def to_json_dict(metrics: dict[str, Any]) -> dict[str, Any]:
    """Return the metrics of :func:`evaluate` as plain JSON types, without the logits."""
    result = {}
    for key, value in metrics.items():
        if key == "logits":
            continue
        result[key] = value.tolist() if hasattr(value, "tolist") else value
    return result
