"""The figures a training run writes: learning curves, the confusion matrix and sample images.

Each function draws on a new :class:`matplotlib.figure.Figure` with the Agg canvas, so no
display and no ``pyplot`` state is involved and figures are freed when the caller drops
them. Each returns the figure, whose axes hold the drawn series for inspection, and, when
``path`` is given, writes a PNG there through a temporary name and a rename.

matplotlib is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chainrule.backend import xp

__all__ = ["plot_curves", "plot_confusion_matrix", "plot_samples", "read_history", "save_figure"]

# Dots per inch of the saved PNG files. With the figure sizes below, images are about
# 1000 to 1200 pixels wide, readable in a report without scaling.
_DPI = 100


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _current_umask() -> int:
    # os.umask can only be read by setting it, so set it and put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as a PNG to ``path`` through a temporary file and a rename.

    Returns the path written. A reader never sees a half-written image, and a failure
    leaves an older file at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            figure.savefig(file, format="png", dpi=_DPI)
        # mkstemp creates the file readable by its owner only; give the image the
        # permissions any new file gets under the current umask.
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def read_history(path: str | os.PathLike) -> list[dict[str, float]]:
    """Read ``history.csv`` into a list of rows with float values (empty cells become NaN)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as file:
        for record in csv.DictReader(file):
            rows.append({
                key: float(value) if value != "" else math.nan for key, value in record.items()
            })
    return rows


def _column(history: Sequence[Mapping[str, Any]], name: str) -> list[float]:
    return [float(row[name]) if row.get(name) is not None else math.nan for row in history]


def plot_curves(history, path: str | os.PathLike | None = None):
    """Draw training and validation loss (left) and accuracy (right) against the epoch.

    Parameters
    ----------
    history : list of dict or path
        Rows with the ``history.csv`` columns (``epoch``, ``train_loss``,
        ``train_accuracy``, ``val_loss``, ``val_accuracy``), or the path of a
        ``history.csv`` file. Validation lines are drawn only where they are not NaN.
    path : path, optional
        Where to write the PNG.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes; each line's label is its ``history.csv`` column name.
    """
    if isinstance(history, (str, os.PathLike)):
        history = read_history(history)
    if len(history) == 0:
        raise ValueError("history is empty; train at least one epoch before plotting curves")

    from matplotlib.ticker import MaxNLocator

    figure = _new_figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = _column(history, "epoch")
    for axes, quantity in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for split, style in (("train", "-"), ("val", "--")):
            name = f"{split}_{quantity}"
            values = _column(history, name)
            if all(math.isnan(value) for value in values):
                continue
            axes.plot(epochs, values, style, marker="o", markersize=3, label=name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(quantity)
        axes.grid(True, alpha=0.3)
        axes.legend()
    loss_axes.set_title("Loss (data loss, without L2)")
    accuracy_axes.set_title("Accuracy")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_confusion_matrix(
    confusion,
    class_names: Sequence[str],
    path: str | os.PathLike | None = None,
    *,
    title: str = "Confusion matrix",
):
    """Draw a confusion matrix as a heat map with a count in every cell.

    Parameters
    ----------
    confusion : int array ``(K, K)``
        Rows are true classes, columns predicted classes.
    class_names : sequence of str, length K
        Tick labels on both axes.
    path : path, optional
        Where to write the PNG.
    title : str
        Figure title; the overall accuracy is appended.

    Returns
    -------
    matplotlib.figure.Figure
        One axes with the image (``axes.images[0]`` contains the counts) and one text per cell.
    """
    confusion = xp.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {confusion.shape}")
    n_classes = confusion.shape[0]
    if len(class_names) != n_classes:
        raise ValueError(
            f"got {len(class_names)} class names for a {n_classes}x{n_classes} confusion matrix"
        )

    size = max(5.0, 0.6 * n_classes + 2.5)
    figure = _new_figure(size + 1.0, size)
    axes = figure.subplots()
    image = axes.imshow(confusion, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=axes, label="examples")

    positions = list(range(n_classes))
    axes.set_xticks(positions, [str(name) for name in class_names], rotation=45, ha="right")
    axes.set_yticks(positions, [str(name) for name in class_names])
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    total = int(confusion.sum())
    correct = int(xp.trace(confusion))
    accuracy = correct / total if total else 0.0
    axes.set_title(f"{title} (accuracy {accuracy:.4f}, {total} examples)")

    # White text on dark cells, black on light ones, so every count stays readable.
    threshold = confusion.max() / 2 if confusion.size else 0
    for row in positions:
        for column in positions:
            count = int(confusion[row, column])
            axes.text(
                column, row, str(count), ha="center", va="center", fontsize=8,
                color="white" if count > threshold else "black",
            )
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_samples(
    images,
    labels,
    class_names: Sequence[str],
    path: str | os.PathLike | None = None,
    *,
    predictions=None,
    probabilities=None,
):
    """Draw the first image of each class, titled with its class name.

    Parameters
    ----------
    images : array ``(n, height, width)`` or ``(n, height * width)`` for square images
        Raw images, for example uint8 pixels.
    labels : int array ``(n,)``
        Class indices ``0..K-1``.
    class_names : sequence of str, length K
        A name per class index.
    path : path, optional
        Where to write the PNG.
    predictions : int array ``(n,)``, optional
        Predicted class indices; each panel then also names the prediction.
    probabilities : float array ``(n,)``, optional
        The probability of each prediction, shown next to it.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per class in class order, titled with the class name; a class with
        no example gets an empty panel titled ``<name> (none)``.
    """
    images = xp.asarray(images)
    labels = xp.asarray(labels)
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ValueError(
                f"flat images need a square number of pixels, got {images.shape[1]}; "
                "pass images of shape (n, height, width)"
            )
        images = images.reshape(images.shape[0], side, side)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, height, width), got {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"got {labels.shape} labels for {images.shape[0]} images")

    n_classes = len(class_names)
    columns = min(n_classes, 5)
    rows = math.ceil(n_classes / columns)
    figure = _new_figure(2.2 * columns, 2.5 * rows)
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for index, axes in enumerate(grid):
        axes.set_axis_off()
        if index >= n_classes:
            continue
        members = xp.flatnonzero(labels == index)
        name = str(class_names[index])
        if members.size == 0:
            axes.set_title(f"{name} (none)", fontsize=9)
            continue
        first = int(members[0])
        axes.imshow(images[first], cmap="gray", interpolation="nearest")
        title = name
        if predictions is not None:
            predicted = int(predictions[first])
            title += f"\npredicted {class_names[predicted]}"
            if probabilities is not None:
                title += f" ({float(probabilities[first]):.2f})"
        axes.set_title(title, fontsize=9)
    if path is not None:
        save_figure(figure, path)
    return figure
