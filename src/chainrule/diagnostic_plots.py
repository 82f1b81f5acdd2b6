"""Figures for looking inside a network: explain, diagnostics, comparisons, failures, paths.

Every function builds a :class:`matplotlib.figure.Figure` directly, without pyplot, so no
global figure state is kept and no display is needed (PNG output goes through the Agg
renderer). When ``path`` is given the figure is written there as a PNG, through a
temporary file and a rename. The figure is returned either way, so that callers and tests
can inspect what was drawn: every drawn series carries a label.

matplotlib is imported when the first figure is made, never when chainrule is imported.
"""

from __future__ import annotations

import math
from pathlib import Path
from chainrule.backend import xp

__all__ = [
    "DEFAULT_DPI",
    "save_figure",
    "plot_explanation",
    "plot_diagnostics",
    "plot_run_diagnostics",
    "plot_activation_comparison",
    "plot_curve_comparison",
    "plot_accuracy_curves",
    "plot_failures",
    "plot_optimizer_paths",
]

DEFAULT_DPI = 100
# One colour per optimizer name, so that the same optimizer looks the same in every figure.
_OPTIMIZER_COLORS = {
    "sgd": "tab:blue",
    "momentum": "tab:orange",
    "nag": "tab:green",
    "rmsprop": "tab:red",
    "adam": "tab:purple",
    "nadam": "tab:brown",
}


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(figure, path, *, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``figure`` to ``path`` as a PNG (temporary file, then rename); return the path."""
    from chainrule.training import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, lambda file: figure.savefig(file, format="png", dpi=dpi))
    return path


def _finish(figure, path, dpi: int):
    if path is not None:
        save_figure(figure, path, dpi=dpi)
    return figure


def _as_image(values):
    """Return ``values`` as a 2-D image: as it is if 2-D, square if its size is a square, else a strip."""
    array = xp.asarray(values, dtype=xp.float64)
    if array.ndim == 2:
        return array
    flat = array.ravel()
    side = math.isqrt(flat.size)
    if side * side == flat.size:
        return flat.reshape(side, side)
    return flat.reshape(1, -1)


def _label_epochs(axes, text: str) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel(text)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def _class_label(class_names, index: int) -> str:
    if class_names and 0 <= index < len(class_names):
        return str(class_names[index])
    return str(index)


# ---------------------------------------------------------------------------------------
# explain


def plot_explanation(explanation, path=None, *, dpi: int = DEFAULT_DPI):
    """Draw the walk of :func:`chainrule.explanation.explain` for one example.

    The figure has four panels. They show the input ``x = h_0``, the input gradient
    ``∇_{h_0} L``, the output distribution ``ŷ`` with ``e(ℓ)`` and ``ŷ − e(ℓ)``, and the
    norm of every gradient of the backward walk from layer ``k = L`` down to 1.
    """
    figure = _new_figure(11.0, 8.0)
    grid = figure.subplots(2, 2)
    label = explanation.label
    where = "" if explanation.index is None else f"example {explanation.index}"
    if explanation.source:
        where += f" of the {explanation.source}" if where else explanation.source
    if where:
        where += ": "
    figure.suptitle(
        f"{where}true {_class_label(explanation.class_names, label)}, predicted "
        f"{_class_label(explanation.class_names, explanation.predicted)} "
        f"(ŷ = {float(explanation.probabilities.values[explanation.predicted]):.3f}), "
        f"loss {explanation.loss:.4g}"
    )

    image_axes = grid[0, 0]
    raw = explanation.raw_input if explanation.raw_input is not None else explanation.forward[0].values
    image_axes.imshow(_as_image(raw), cmap="gray", interpolation="nearest", aspect="auto"
                      if _as_image(raw).shape[0] == 1 else "equal")
    image_axes.set_title(r"input $x = h_0$")
    image_axes.set_xticks([])
    image_axes.set_yticks([])

    saliency_axes = grid[0, 1]
    input_gradient = explanation.layers[-1].below_activation.values
    limit = float(xp.max(xp.abs(input_gradient))) or 1.0
    saliency = _as_image(input_gradient)
    shown = saliency_axes.imshow(saliency, cmap="RdBu_r", vmin=-limit, vmax=limit,
                                 interpolation="nearest",
                                 aspect="auto" if saliency.shape[0] == 1 else "equal")
    figure.colorbar(shown, ax=saliency_axes, shrink=0.8)
    saliency_axes.set_title(r"$\nabla_{h_0} L = W_1^T \nabla_{a_1} L$ (red raises the loss)")
    saliency_axes.set_xticks([])
    saliency_axes.set_yticks([])

    _draw_output_distribution(grid[1, 0], explanation)
    _draw_gradient_walk(grid[1, 1], explanation)
    return _finish(figure, path, dpi)


def _draw_output_distribution(axes, explanation) -> None:
    probabilities = explanation.probabilities.values
    classes = xp.arange(probabilities.shape[0])
    width = 0.4
    axes.bar(classes - width / 2, probabilities, width, color="tab:blue", label=r"$\hat{y}$")
    axes.bar(classes + width / 2, explanation.output_error.values, width, color="tab:red",
             label=r"$\hat{y} - e(\ell)$")
    axes.plot(classes, explanation.one_hot.values, linestyle="none", marker="o",
              markerfacecolor="none", color="black", label=r"$e(\ell)$")
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xticks(classes)
    axes.set_xticklabels(
        [_class_label(explanation.class_names, int(j)) for j in classes], rotation=45, ha="right",
        fontsize=8,
    )
    axes.set_ylim(-1.05, 1.05)
    axes.set_title(r"output: $\hat{y}$, $e(\ell)$ and $\nabla_{a_L} L$" if explanation.loss_name
                   == "cross_entropy" else r"output: $\hat{y}$, $e(\ell)$ and $\hat{y} - e(\ell)$")
    axes.legend(fontsize=8, loc="lower left")


def _draw_gradient_walk(axes, explanation) -> None:
    layers = [step.layer for step in explanation.layers]
    series = {
        r"$\|\nabla_{W_k} L\|$": [step.weights.norm for step in explanation.layers],
        r"$\|\nabla_{b_k} L\|$": [step.biases.norm for step in explanation.layers],
        r"$\|\nabla_{h_{k-1}} L\|$": [step.below_activation.norm for step in explanation.layers],
        r"$\|\nabla_{a_{k-1}} L\|$": [
            math.nan if step.below_pre_activation is None else step.below_pre_activation.norm
            for step in explanation.layers
        ],
    }
    markers = ("o", "s", "^", "v")
    for (name, values), marker in zip(series.items(), markers):
        # Zero norms (a dead layer) cannot be drawn on a log axis, so they are left as gaps.
        positive = [value if value > 0 else math.nan for value in values]
        axes.plot(layers, positive, marker=marker, label=name)
    axes.set_yscale("log")
    axes.set_xticks(layers)
    axes.set_xlim(max(layers) + 0.3, min(layers) - 0.3)
    axes.set_xlabel("layer k (the backward walk goes from L down to 1)")
    axes.set_ylabel("norm")
    axes.set_title("gradient norms along the backward walk")
    axes.legend(fontsize=8)


# ---------------------------------------------------------------------------------------
# per-epoch diagnostics


def _load_record(source) -> dict:
    from chainrule.diagnostics import DiagnosticsRecorder, load_diagnostics

    if isinstance(source, DiagnosticsRecorder):
        return source.to_dict()
    if isinstance(source, dict):
        return source
    return load_diagnostics(source)


def _series(rows, key: str, layer: int):
    values = [row[key][layer] for row in rows]
    return [math.nan if value is None else float(value) for value in values]


def plot_diagnostics(source, path=None, *, dpi: int = DEFAULT_DPI, title: str | None = None):
    """Draw a run's per-epoch diagnostics in four panels.

    Parameters
    ----------
    source : path, dict or DiagnosticsRecorder
        A run directory or ``diagnostics.json`` path, a record as returned by
        :func:`chainrule.diagnostics.load_diagnostics`, or a recorder.
    path : path, optional
        Where to write the PNG. :func:`plot_run_diagnostics` picks ``diagnostics.png`` in
        the run directory.

    The panels: the weight-gradient norm of each layer (log scale), the fraction of dead
    units of each ReLU layer, the fraction of saturated units of each sigmoid or tanh
    layer, and the spread between the units' gradients in each layer.
    """
    record = _load_record(source)
    rows = record["rows"]
    activations = record["activations"]
    n_layers = len(record["layer_sizes"]) - 1
    epochs = [row["epoch"] for row in rows]

    figure = _new_figure(11.0, 7.5)
    grid = figure.subplots(2, 2, sharex=True)
    sizes = "-".join(str(n) for n in record["layer_sizes"])
    if len(set(activations)) == 1:
        hidden = activations[0]
    else:
        hidden = ", ".join(activations) or "no hidden layer"
    figure.suptitle(
        title or f"Diagnostics of {sizes} {hidden}, "
        f"{record.get('weight_init', '')} initialisation, on a fixed batch of "
        f"{record.get('diagnostic_batch_size', '?')}"
    )

    norms_axes = grid[0, 0]
    for k in range(n_layers):
        name = activations[k] if k < len(activations) else "softmax output"
        values = [value if value > 0 else math.nan for value in _series(rows, "weight_gradient_norm", k)]
        norms_axes.plot(epochs, values, marker=".", label=f"W_{k + 1} ({name})")
    norms_axes.set_yscale("log")
    norms_axes.set_title(r"weight-gradient norm $\|\nabla_{W_k} L\|$ per layer")
    norms_axes.legend(fontsize=8)

    dead_axes = grid[0, 1]
    _draw_fractions(dead_axes, rows, epochs, "dead_fraction", activations, ("relu",),
                    "dead ReLU units (off on every example)")
    saturated_axes = grid[1, 0]
    _draw_fractions(saturated_axes, rows, epochs, "saturated_fraction", activations,
                    ("sigmoid", "tanh"),
                    f"saturated sigmoid/tanh units "
                    f"(g' < {record.get('saturation_level', 0.05):g} × max g')")

    spread_axes = grid[1, 1]
    for k, name in enumerate(activations):
        spread_axes.plot(epochs, _series(rows, "unit_gradient_spread", k), marker=".",
                         label=f"h_{k + 1} ({name})")
    spread_axes.set_ylim(-0.05, 1.05)
    spread_axes.set_title("spread between the units' gradients (0: all units identical)")
    if activations:
        spread_axes.legend(fontsize=8)

    for axes in grid[1]:
        _label_epochs(axes, "epoch (0 = before training)")
    return _finish(figure, path, dpi)


def _draw_fractions(axes, rows, epochs, key, activations, kinds, title) -> None:
    drawn = 0
    for k, name in enumerate(activations):
        if name in kinds:
            axes.plot(epochs, _series(rows, key, k), marker=".", label=f"h_{k + 1} ({name})")
            drawn += 1
    axes.set_ylim(-0.05, 1.05)
    axes.set_title(title)
    if drawn:
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, f"no {' or '.join(kinds)} layers in this network",
                  transform=axes.transAxes, ha="center", va="center", color="grey")


def plot_run_diagnostics(run_dir, *, dpi: int = DEFAULT_DPI) -> Path:
    """Draw ``diagnostics.json`` of a run into ``diagnostics.png`` beside it; return the PNG path."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent
    path = run_dir / "diagnostics.png"
    figure = plot_diagnostics(run_dir, path, dpi=dpi)
    del figure
    return path


def plot_activation_comparison(records: dict, path=None, *, dpi: int = DEFAULT_DPI):
    """Draw the weight-gradient norm per layer for several activations (vanishing gradients).

    ``records`` maps a label (the activation) to a diagnostics record, as
    :func:`chainrule.comparisons.compare_activations` returns. The first panel shows
    ``‖∇W_k‖`` against the layer ``k`` before training and after the last epoch; the
    others show each network's norms over the epochs.
    """
    figure = _new_figure(4.0 * (len(records) + 1), 4.2)
    grid = figure.subplots(1, len(records) + 1, squeeze=False)[0]
    layers_axes = grid[0]
    colors = ("tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown")
    for (label, record), color in zip(records.items(), colors):
        n_layers = len(record["layer_sizes"]) - 1
        layers = list(range(1, n_layers + 1))
        first, last = record["rows"][0], record["rows"][-1]
        layers_axes.plot(layers, first["weight_gradient_norm"], marker="o", color=color,
                         linestyle="--", label=f"{label}, epoch {first['epoch']}")
        layers_axes.plot(layers, last["weight_gradient_norm"], marker="o", color=color,
                         label=f"{label}, epoch {last['epoch']}")
    layers_axes.set_yscale("log")
    layers_axes.set_xlabel("layer k (1 = next to the input)")
    layers_axes.set_title(r"$\|\nabla_{W_k} L\|$ by layer")
    layers_axes.legend(fontsize=8)

    for axes, (label, record) in zip(grid[1:], records.items()):
        rows = record["rows"]
        epochs = [row["epoch"] for row in rows]
        for k in range(len(record["layer_sizes"]) - 1):
            axes.plot(epochs, _series(rows, "weight_gradient_norm", k), marker=".", label=f"W_{k + 1}")
        axes.set_yscale("log")
        _label_epochs(axes, "epoch")
        axes.set_title(f"{label}: $\\|\\nabla_{{W_k}} L\\|$ over training")
        axes.legend(fontsize=7)
    sizes = "-".join(str(n) for n in next(iter(records.values()))["layer_sizes"])
    figure.suptitle(f"Gradient norms through the layers of {sizes}")
    return _finish(figure, path, dpi)


# ---------------------------------------------------------------------------------------
# curves


def plot_curve_comparison(results: dict, path=None, *, title: str = "", dpi: int = DEFAULT_DPI):
    """Overlay the loss and accuracy curves of several runs.

    ``results`` maps a label (a loss or optimizer name) to rows with ``epoch``,
    ``train_loss``, ``test_loss``, ``train_accuracy`` and ``test_accuracy``, as
    :func:`chainrule.comparisons.train_with_curves` returns. Training curves are solid,
    test curves dashed, one colour per run.
    """
    figure = _new_figure(11.0, 4.5)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for position, (label, rows) in enumerate(results.items()):
        color = _OPTIMIZER_COLORS.get(label, f"C{position}")
        epochs = [row["epoch"] for row in rows]
        for axes, quantity in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
            axes.plot(epochs, [row[f"train_{quantity}"] for row in rows], color=color,
                      marker=".", label=f"{label} train")
            axes.plot(epochs, [row[f"test_{quantity}"] for row in rows], color=color,
                      linestyle="--", marker=".", label=f"{label} test")
    loss_axes.set_title("loss (each run's own loss function)")
    _label_epochs(loss_axes, "epoch (0 = before training)")
    loss_axes.set_yscale("log")
    accuracy_axes.set_title("accuracy")
    _label_epochs(accuracy_axes, "epoch (0 = before training)")
    accuracy_axes.legend(fontsize=8, ncol=2 if len(results) > 3 else 1)
    figure.suptitle(title)
    return _finish(figure, path, dpi)


def plot_accuracy_curves(rows, path=None, *, title: str = "", dpi: int = DEFAULT_DPI):
    """Draw training against test accuracy (and loss) over the epochs of one run.

    ``rows`` are the curves of :func:`chainrule.comparisons.train_with_curves`. The gap
    between the two accuracy curves is the generalisation gap.
    """
    figure = _new_figure(11.0, 4.5)
    accuracy_axes, loss_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in rows]
    for axes, quantity in ((accuracy_axes, "accuracy"), (loss_axes, "loss")):
        axes.plot(epochs, [row[f"train_{quantity}"] for row in rows], marker="o",
                  color="tab:blue", label=f"train {quantity}")
        axes.plot(epochs, [row[f"test_{quantity}"] for row in rows], marker="s",
                  color="tab:orange", label=f"test {quantity}")
        _label_epochs(axes, "epoch (0 = before training)")
        axes.set_title(quantity)
        axes.legend()
    final = rows[-1]
    accuracy_axes.annotate(
        f"gap {final['train_accuracy'] - final['test_accuracy']:+.3f}",
        xy=(final["epoch"], final["test_accuracy"]), xytext=(-60, -30),
        textcoords="offset points", arrowprops={"arrowstyle": "->", "color": "grey"},
    )
    figure.suptitle(title or "Training against test accuracy")
    return _finish(figure, path, dpi)


# ---------------------------------------------------------------------------------------
# failure gallery


def plot_failures(failures, images, class_names=None, path=None, *, columns: int = 8,
                  dpi: int = DEFAULT_DPI, title: str = ""):
    """Draw the most confidently wrong examples with true class, prediction and ``ŷ``.

    Parameters
    ----------
    failures : list of Failure
        From :func:`chainrule.explanation.most_confident_failures`, most confident first.
    images : array ``(n, ...)``
        The raw inputs the failures' ``index`` refers to; each is drawn as an image.
    class_names : sequence of str, optional
    """
    count = len(failures)
    columns = max(1, min(columns, count))
    rows = max(1, math.ceil(count / columns))
    figure = _new_figure(1.45 * columns + 0.4, 1.75 * rows + 0.6)
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.ravel():
        axes.set_axis_off()
    for failure, axes in zip(failures, grid.ravel()):
        axes.imshow(_as_image(images[failure.index]), cmap="gray", interpolation="nearest")
        axes.set_title(
            f"true: {_class_label(class_names, failure.label)}\n"
            f"pred: {_class_label(class_names, failure.predicted)} {failure.probability:.2f}",
            fontsize=7,
        )
    if count == 0:
        grid[0, 0].text(0.5, 0.5, "no misclassified examples", ha="center", va="center",
                        transform=grid[0, 0].transAxes)
    figure.suptitle(title or f"The {count} most confidently wrong predictions")
    return _finish(figure, path, dpi)


# ---------------------------------------------------------------------------------------
# optimizer paths


def plot_optimizer_paths(paths_by_surface: dict, path=None, *, dpi: int = DEFAULT_DPI):
    """Draw each optimizer's path over the contours of 2-D error surfaces.

    ``paths_by_surface`` maps a surface name of :data:`chainrule.surfaces.SURFACES`
    (or a Surface) to ``{optimizer name: array (steps + 1, 2)}``, as
    :func:`chainrule.surfaces.optimizer_paths` returns. One panel per surface.
    """
    from chainrule.surfaces import SURFACES

    figure = _new_figure(5.0 * len(paths_by_surface), 5.0)
    grid = figure.subplots(1, len(paths_by_surface), squeeze=False)[0]
    for axes, (surface, paths) in zip(grid, paths_by_surface.items()):
        surface = SURFACES[surface] if isinstance(surface, str) else surface
        x = xp.linspace(*surface.x_range, 300)
        y = xp.linspace(*surface.y_range, 300)
        grid_x, grid_y = xp.meshgrid(x, y)
        values = surface.function(grid_x, grid_y)
        if surface.log_levels:
            levels = xp.logspace(-1, math.log10(float(values.max())), 20)
            axes.contour(grid_x, grid_y, values, levels=levels, colors="0.7", linewidths=0.7)
        else:
            levels = xp.linspace(float(values.min()), float(values.max()), 25)
            axes.contour(grid_x, grid_y, values, levels=levels, colors="0.7", linewidths=0.7)
        for position, (name, points) in enumerate(paths.items()):
            points = xp.asarray(points)
            axes.plot(points[:, 0], points[:, 1], color=_OPTIMIZER_COLORS.get(name, f"C{position}"),
                      marker=".", markersize=3, linewidth=1.2, label=name)
        axes.plot([surface.start[0]], [surface.start[1]], marker="o", color="black",
                  linestyle="none", label="start")
        axes.plot([m[0] for m in surface.minima], [m[1] for m in surface.minima], marker="*",
                  markersize=12, color="gold", markeredgecolor="black", linestyle="none",
                  label="minimum")
        axes.set_xlim(*surface.x_range)
        axes.set_ylim(*surface.y_range)
        steps = max(len(points) for points in paths.values()) - 1 if paths else 0
        axes.set_title(f"{surface.title}\n{surface.formula}, {steps} steps", fontsize=10)
        axes.set_xlabel("x")
        axes.set_ylabel("y")
    grid[0].legend(fontsize=8, loc="upper right" if len(paths_by_surface) > 1 else "best")
    figure.suptitle("Optimizers' paths on 2-D error surfaces")
    return _finish(figure, path, dpi)
