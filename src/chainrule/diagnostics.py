"""Looking inside a network: the backward walk for one example, and training diagnostics.

:func:`explain` runs one example through the network and returns every quantity of the
course's derivation, in its order. First come the forward values ``h_0, a_1, h_1, ..., a_L,
ŷ``. Then come ``ŷ``, ``e(ℓ)`` and the output gradient ``∇_{a_L} L = ŷ − e(ℓ)``, and for
``k = L`` down to ``1`` the gradients with respect to ``W_k``, ``b_k``, ``h_{k-1}`` and
``a_{k-1}``. The
gradients are the core's own, from :meth:`Network.loss_and_gradients` on a batch of one,
so ``1/B = 1`` and each row is the column vector of the derivation. The only extra is the
gradient with respect to the input, ``∇_{h_0} L = W_1ᵀ ∇_{a_1} L``, which backpropagation
never needs and the core therefore does not return.

:class:`DiagnosticsRecorder` is a trainer callback that, after every epoch, measures on a
fixed diagnostic batch:

* ``weight_gradient_norm``: ``‖∇W_k‖`` (Frobenius) of the data loss, per layer. Through a
  sigmoid stack it shrinks towards the input layer (vanishing gradients);
* ``dead_fraction``: per ReLU layer, the fraction of units whose pre-activation is ``<= 0``
  on every example of the batch, so that they pass no gradient at all;
* ``saturated_fraction``: per sigmoid or tanh layer, the fraction of unit–example pairs
  where ``g'(a)`` is below :data:`SATURATION_LEVEL` times the largest slope of ``g``;
* ``unit_gradient_spread``: per hidden layer, how much the gradients of its units differ
  (see :func:`unit_gradient_spread`). With zero or constant initialisation it stays at 0,
  which shows that the units never stop being copies of one another. The output layer is
  left out: its units stand for different classes, and under cross-entropy their gradient
  rows sum to zero, so their spread is 1 whatever the initialisation.

The rest of the module trains the small experiments a course report asks for (loss
functions, optimizers, activations compared on a subset), finds the most confident
mistakes of a model, and defines the 2-D error surfaces on which optimizers' paths are
drawn. Figures are in :mod:`chainrule.diagnostic_plots`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from chainrule import optimizers as optimizer_registry
from chainrule.backend import xp
from chainrule.losses import softmax
from chainrule.network import Network

__all__ = [
    "DIAGNOSTICS_FILE",
    "DIAGNOSTICS_CSV_FILE",
    "SATURATION_LEVEL",
    "SURFACES",
    "ArraySummary",
    "LayerStep",
    "Explanation",
    "explain",
    "input_gradient",
    "DiagnosticsRecorder",
    "recorder_for_run",
    "load_diagnostics",
    "measure",
    "unit_gradient_spread",
    "DataSubset",
    "load_subset",
    "train_with_curves",
    "compare_losses",
    "compare_optimizers",
    "compare_activations",
    "accuracy_curves",
    "Failure",
    "most_confident_failures",
    "Surface",
    "optimizer_paths",
]

DIAGNOSTICS_FILE = "diagnostics.json"
DIAGNOSTICS_CSV_FILE = "diagnostics.csv"
DIAGNOSTICS_FORMAT_VERSION = 1
# A unit counts as saturated on an example when g'(a) is below this fraction of the largest
# slope of g: sigmoid h < 0.0127 or h > 0.9873 (|a| > 4.36), tanh |h| > 0.975 (|a| > 2.18).
SATURATION_LEVEL = 0.05
_MAXIMUM_SLOPE = {"sigmoid": 0.25, "tanh": 1.0}
# Rows of the diagnostic batch that recorder_for_run keeps: enough for stable fractions,
# few enough that one extra forward and backward pass per epoch costs nothing noticeable.
DEFAULT_DIAGNOSTIC_ROWS = 256


# ---------------------------------------------------------------------------------------
# explain: the backward walk for one example


@dataclass
class ArraySummary:
    """One quantity of the walk: its course symbol, its values and how they were formed.

    Attributes
    ----------
    symbol : str
        The course symbol, e.g. ``∇_{W_2} L``.
    formula : str
        How the derivation computes it, e.g. ``∇_{a_2} L · h_1ᵀ``; empty for inputs.
    values : ndarray
        One example's values in the derivation's shape: ``(n_k,)`` for vectors,
        ``(n_k, n_{k-1})`` for weight gradients.
    """

    symbol: str
    formula: str
    values: Any

    @property
    def shape(self) -> tuple:
        return tuple(self.values.shape)

    @property
    def norm(self) -> float:
        """The Euclidean (Frobenius for matrices) norm, computed in float64."""
        return float(xp.linalg.norm(xp.asarray(self.values, dtype=xp.float64).ravel()))

    def largest(self, count: int = 5) -> list[tuple[tuple[int, ...], float]]:
        """Return up to ``count`` entries of largest magnitude as ``(index, value)``, largest first.

        Indices count from 0, as NumPy does; ties keep the lower flat index first.
        """
        flat = xp.asarray(self.values).ravel()
        count = min(int(count), flat.size)
        order = xp.argsort(-xp.abs(flat), kind="stable")[:count]
        return [
            (tuple(int(i) for i in xp.unravel_index(position, self.values.shape)),
             float(flat[position]))
            for position in order
        ]


@dataclass
class LayerStep:
    """The backward step through layer ``k``, in the order the derivation takes it.

    ``below_pre_activation`` is None for ``k = 1``: the input ``h_0 = x`` has no
    pre-activation. ``below_activation`` for ``k = 1`` is the input gradient
    ``∇_{h_0} L``, which the core does not compute (see :func:`input_gradient`).
    """

    layer: int
    weights: ArraySummary
    biases: ArraySummary
    below_activation: ArraySummary
    below_pre_activation: ArraySummary | None


@dataclass
class Explanation:
    """Everything :func:`explain` found for one example.

    Attributes
    ----------
    label : int
        ``ℓ``, the true class index ``0..K-1``.
    predicted : int
        The class with the largest ``ŷ_j``.
    forward : list of ArraySummary
        ``h_0, a_1, h_1, ..., a_L``: the forward values in the order they are computed.
    probabilities, one_hot, output_error : ArraySummary
        ``ŷ``, ``e(ℓ)`` and ``ŷ − e(ℓ)``, each ``(K,)``.
    output_gradient : ArraySummary
        ``∇_{a_L} L``: equal to ``ŷ − e(ℓ)`` for cross-entropy, ``J (ŷ − e(ℓ))`` with the
        softmax Jacobian ``J`` for squared error.
    layers : list of LayerStep
        One step per layer, for ``k = L`` down to ``1``.
    loss : float
        ``L`` for this example, the L2 penalty included when ``weight_decay > 0``.
    raw_input : ndarray
        The example as it was passed in (e.g. a ``(28, 28)`` image), for drawing.
    index : int or None
        The example's position in its data set, when known.
    source : str or None
        Where the example came from, e.g. ``fashion_mnist test set``.
    """

    label: int
    predicted: int
    class_names: list
    forward: list
    probabilities: ArraySummary
    one_hot: ArraySummary
    output_error: ArraySummary
    output_gradient: ArraySummary
    layers: list
    loss: float
    loss_name: str
    activation_names: list
    layer_sizes: tuple
    weight_decay: float
    raw_input: Any = None
    index: int | None = None
    source: str | None = None

    @property
    def n_layers(self) -> int:
        """``L``, the number of weight layers."""
        return len(self.layers)

    def class_name(self, class_index: int) -> str:
        """Return the display name of a class index, or the index itself as text."""
        if self.class_names and 0 <= class_index < len(self.class_names):
            return str(self.class_names[class_index])
        return str(class_index)

    def format_text(self, top: int = 5) -> str:
        """Return the walk as plain text, forward values first, then ``k = L`` down to 1.

        ``top`` sets how many entries of largest magnitude are listed per gradient.
        """
        return _format_explanation(self, top)

    def __str__(self) -> str:
        return self.format_text()


def input_gradient(network: Network, gradients) -> Any:
    """Return ``∇_{h_0} L = W_1ᵀ ∇_{a_1} L`` for a batch, shape ``(batch, n_0)``.

    In the row layout of a batch this is ``G_1 W_1``. The core stops at ``∇W_1`` and
    ``∇b_1`` because no parameter lies below the input, so this product is formed here.
    It is the gradient of the (mean) loss with respect to each input feature.
    """
    return gradients.pre_activations[0] @ network.weights[0]


def _one_example(model_or_network, X_one):
    """Return ``(network, features (1, n_0), raw example, model or None)``."""
    if isinstance(model_or_network, Network):
        network, model = model_or_network, None
    else:
        network = getattr(model_or_network, "network", None)
        if not isinstance(network, Network) or not hasattr(model_or_network, "transform"):
            raise TypeError(
                "explain needs a chainrule.Network or a model from chainrule.load_model, got "
                f"{type(model_or_network).__name__}"
            )
        model = model_or_network

    raw = xp.asarray(X_one)
    if raw.ndim == 0:
        raise ValueError(f"X_one must be one example (an array), got the scalar {X_one!r}")
    # A leading axis of length 1 is a batch of one; anything else is the example itself.
    batch = raw if (raw.ndim >= 2 and raw.shape[0] == 1) else raw[None]
    if model is not None:
        features = model.transform(batch)
    else:
        features = network.check_input(batch.reshape(1, -1))
    return network, features, batch[0], model


def explain(
    model_or_network,
    X_one,
    y_one,
    *,
    index: int | None = None,
    class_names=None,
    source: str | None = None,
) -> Explanation:
    """Trace the forward pass and the backward walk of backpropagation for one example.

    Parameters
    ----------
    model_or_network : Network or chainrule.training.Model
        A ``Model`` (from :func:`chainrule.load_model`) applies its preprocessing to
        ``X_one`` and its label mapping to ``y_one``. A ``Network`` takes features and a
        class index.
    X_one : array
        One example: raw input such as a ``(28, 28)`` image for a ``Model``, features
        ``(n_0,)`` for a ``Network``. A leading batch axis of length 1 is accepted.
    y_one : int or label
        The true label: a class index ``0..K-1`` for a ``Network``, the data set's own
        label for a ``Model``.
    index : int, optional
        The example's position in its data set, shown in the text and the figure.
    class_names : sequence of str, optional
        Display names per class index; a ``Model``'s own are used by default.
    source : str, optional
        A description of where the example came from, e.g. ``fashion_mnist test set``.

    Returns
    -------
    Explanation
        The gradients equal those of ``network.loss_and_gradients`` on the batch of one.
    """
    network, features, raw, model = _one_example(model_or_network, X_one)
    label_array = xp.asarray(y_one).reshape(-1)
    if label_array.size != 1:
        raise ValueError(f"y_one must be a single label, got {label_array.size} values: {y_one!r}")
    if model is not None:
        label_array = model.encode_labels(label_array)
    labels = network.check_labels(label_array, 1)
    label = int(labels[0])
    if class_names is None and model is not None:
        class_names = model.class_names
    class_names = list(class_names) if class_names is not None else []

    L = network.n_layers
    loss, gradients = network.loss_and_gradients(features, labels)
    pre_activations, activations = network.forward_trace(features)
    probabilities = softmax(pre_activations[-1])[0]
    one_hot = xp.zeros_like(probabilities)
    one_hot[label] = 1.0

    forward = [ArraySummary("h_0", "x", features[0].copy())]
    for k in range(1, L + 1):
        forward.append(ArraySummary(f"a_{k}", f"b_{k} + W_{k} h_{k - 1}", pre_activations[k - 1][0]))
        if k < L:
            forward.append(
                ArraySummary(f"h_{k}", f"{network.activation_names[k - 1]}(a_{k})", activations[k][0])
            )

    if network.loss_name == "cross_entropy":
        output_formula = "ŷ − e(ℓ)"
    else:
        output_formula = "ŷ ⊙ (d − ŷ·d),  d = ŷ − e(ℓ)"

    steps = []
    for k in range(L, 0, -1):
        # The core's weight gradient carries the L2 term, so the formula shows it too.
        decay = f" + λ W_{k}" if network.weight_decay else ""
        weights = ArraySummary(
            f"∇_{{W_{k}}} L", f"∇_{{a_{k}}} L · h_{k - 1}ᵀ{decay}", gradients.weights[k - 1].copy()
        )
        biases = ArraySummary(f"∇_{{b_{k}}} L", f"∇_{{a_{k}}} L", gradients.biases[k - 1].copy())
        if k > 1:
            below_activation = ArraySummary(
                f"∇_{{h_{k - 1}}} L", f"W_{k}ᵀ ∇_{{a_{k}}} L", gradients.activations[k - 2][0].copy()
            )
            below_pre_activation = ArraySummary(
                f"∇_{{a_{k - 1}}} L", f"∇_{{h_{k - 1}}} L ⊙ g'(a_{k - 1})",
                gradients.pre_activations[k - 2][0].copy(),
            )
        else:
            below_activation = ArraySummary(
                "∇_{h_0} L", "W_1ᵀ ∇_{a_1} L", input_gradient(network, gradients)[0]
            )
            below_pre_activation = None
        steps.append(LayerStep(k, weights, biases, below_activation, below_pre_activation))

    return Explanation(
        label=label,
        predicted=int(xp.argmax(probabilities)),
        class_names=class_names,
        forward=forward,
        probabilities=ArraySummary("ŷ", f"softmax(a_{L})", probabilities),
        one_hot=ArraySummary("e(ℓ)", "", one_hot),
        output_error=ArraySummary("ŷ − e(ℓ)", "", probabilities - one_hot),
        output_gradient=ArraySummary(
            f"∇_{{a_{L}}} L", output_formula, gradients.pre_activations[L - 1][0].copy()
        ),
        layers=steps,
        loss=float(loss),
        loss_name=network.loss_name,
        activation_names=list(network.activation_names),
        layer_sizes=tuple(network.layer_sizes),
        weight_decay=network.weight_decay,
        raw_input=xp.array(raw, copy=True),
        index=index,
        source=source,
    )


def _format_number(value: float) -> str:
    return f"{value:.4g}"


def _format_entries(summary: ArraySummary, top: int) -> str:
    parts = []
    for position, value in summary.largest(top):
        where = ", ".join(str(i) for i in position)
        parts.append(f"[{where}] {_format_number(value)}")
    return ", ".join(parts)


def _summary_line(summary: ArraySummary, width: int, top: int) -> list[str]:
    left = f"{summary.symbol} = {summary.formula}" if summary.formula else summary.symbol
    shape = "(" + ", ".join(str(n) for n in summary.shape) + ("," if len(summary.shape) == 1 else "") + ")"
    lines = [f"  {left:<{width}}  shape {shape:<10}  norm {_format_number(summary.norm)}"]
    if top > 0:
        lines.append(f"  {'':<{width}}  largest: {_format_entries(summary, top)}")
    return lines


def _format_explanation(explanation: Explanation, top: int) -> str:
    L = explanation.n_layers
    label = explanation.label
    lines = []

    where = "Example"
    if explanation.index is not None:
        where = f"Example {explanation.index}"
    if explanation.source:
        where += f" of the {explanation.source}"
    probability_of_label = float(explanation.probabilities.values[label])
    lines.append(
        f"{where}: true class ℓ = {label} ({explanation.class_name(label)}), predicted "
        f"{explanation.predicted} ({explanation.class_name(explanation.predicted)}), "
        f"ŷ_ℓ = {probability_of_label:.4f}"
    )
    sizes = "-".join(str(n) for n in explanation.layer_sizes)
    names = explanation.activation_names
    if not names:
        hidden = "no hidden layer (softmax regression)"
    elif len(set(names)) == 1:
        hidden = f"hidden activation {names[0]}"
    else:
        hidden = f"hidden activations {', '.join(names)}"
    lines.append(
        f"Network {sizes}, {hidden}, loss {explanation.loss_name}, "
        f"weight decay λ = {explanation.weight_decay:g}"
    )
    if explanation.loss_name == "cross_entropy":
        loss_formula = "−log ŷ_ℓ"
    else:
        loss_formula = "½ Σ_j (ŷ_j − e(ℓ)_j)²"
    if explanation.weight_decay:
        loss_formula += " + (λ/2) Σ_k ‖W_k‖²"
    lines.append(f"Loss L = {loss_formula} = {explanation.loss:.6g}")
    lines.append("")

    width = max(
        len(f"{s.symbol} = {s.formula}")
        for step in explanation.layers
        for s in (step.weights, step.biases, step.below_activation, step.below_pre_activation)
        if s is not None
    )
    width = max(width, *(len(f"{s.symbol} = {s.formula}") for s in explanation.forward),
                len(f"{explanation.output_gradient.symbol} = {explanation.output_gradient.formula}"))

    lines.append("Forward pass")
    for summary in explanation.forward:
        lines.extend(_summary_line(summary, width, 0))
    lines.append(f"  {explanation.probabilities.symbol} = {explanation.probabilities.formula}")
    lines.append("")

    lines.append(f"Output layer (k = {L}): ŷ, e(ℓ) and the output gradient")
    lines.extend(_class_table(explanation, top))
    lines.extend(_summary_line(explanation.output_gradient, width, top))
    if explanation.loss_name == "cross_entropy":
        lines.append(
            f"  {'':<{width}}  softmax paired with cross-entropy collapses to ŷ − e(ℓ): "
            "the prediction minus the truth"
        )
    lines.append("")

    for step in explanation.layers:
        g = explanation.activation_names[step.layer - 2] if step.layer > 1 else None
        lines.append(f"Layer k = {step.layer}")
        lines.extend(_summary_line(step.weights, width, top))
        lines.extend(_summary_line(step.biases, width, top))
        lines.extend(_summary_line(step.below_activation, width, top))
        if step.below_pre_activation is not None:
            lines.extend(_summary_line(step.below_pre_activation, width, top))
            lines.append(f"  {'':<{width}}  g = {g}")
        else:
            lines.append(
                f"  {'':<{width}}  the gradient with respect to the input x = h_0; "
                "backpropagation itself stops at ∇_{W_1} L and ∇_{b_1} L"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _class_table(explanation: Explanation, top: int) -> list[str]:
    """Return the ``j, class, ŷ_j, e(ℓ)_j, ŷ_j − e(ℓ)_j`` table (only the largest ŷ_j if K > 20)."""
    probabilities = explanation.probabilities.values
    K = probabilities.shape[0]
    if K <= 20:
        shown = list(range(K))
    else:
        largest = [position[0] for position, _ in explanation.probabilities.largest(max(top, 1))]
        shown = sorted(set(largest) | {explanation.label})
    name_width = max(len("class"), *(len(explanation.class_name(j)) for j in shown))
    header = f"  {'j':>3}  {'class':<{name_width}}  {'ŷ_j':>10}  {'e(ℓ)_j':>6}  {'ŷ_j − e(ℓ)_j':>13}"
    lines = [header]
    for j in shown:
        marker = "  ← ℓ" if j == explanation.label else ""
        lines.append(
            f"  {j:>3}  {explanation.class_name(j):<{name_width}}  {float(probabilities[j]):>10.4g}  "
            f"{float(explanation.one_hot.values[j]):>6.0f}  "
            f"{float(explanation.output_error.values[j]):>13.4g}{marker}"
        )
    if len(shown) < K:
        lines.append(f"  ({K - len(shown)} classes with smaller ŷ_j not shown)")
    return lines


# ---------------------------------------------------------------------------------------
# Per-epoch diagnostics


def unit_gradient_spread(unit_gradients) -> float:
    """Return how much the gradient rows of a layer's units differ, from 0 to 1.

    Row ``i`` of ``unit_gradients`` ``(units, inputs)`` is unit ``i``'s gradient trace:
    its row of ``∇W_k`` with ``∇b_k[i]`` appended. The spread is

        sqrt(mean_j var_i(R[i, j])) / sqrt(mean_ij R[i, j]²)

    the standard deviation across units, averaged over the entries, relative to the size
    of the entries. It is 0 exactly when every row is the same (and 0 for an all-zero
    matrix), and near 1 for rows of independent zero-mean values.
    """
    rows = xp.asarray(unit_gradients, dtype=xp.float64)
    if rows.ndim != 2:
        raise ValueError(f"unit_gradients must be 2-D (units, inputs), got shape {rows.shape}")
    scale = math.sqrt(float(xp.mean(rows * rows)))
    if scale == 0.0:
        return 0.0
    deviation = math.sqrt(float(xp.mean(xp.var(rows, axis=0))))
    return deviation / scale


def measure(network: Network, X, labels) -> dict:
    """Measure the diagnostics of ``network`` on a batch, as lists indexed by layer.

    ``X`` and ``labels`` must already be valid (see :meth:`Network.check_input`).

    Returns
    -------
    dict
        ``loss``: the mean data loss on the batch.
        ``weight_gradient_norm`` and ``bias_gradient_norm``: ``L`` floats, the norms of
        the data-loss gradient without the L2 term, so that weight decay does not mask
        a vanishing gradient.
        ``unit_gradient_spread``: ``L − 1`` floats, one per hidden layer.
        ``dead_fraction`` and ``saturated_fraction``: ``L − 1`` values, None where the
        layer's activation has no such state. Only ReLU units can be dead, and only
        sigmoid and tanh units saturated.
    """
    loss, gradients = network.loss_and_gradients(X, labels)
    pre_activations, activations = network.forward_trace(X)

    weight_norms, bias_norms, spreads = [], [], []
    for k in range(network.n_layers):
        weight_gradient = gradients.weights[k].astype(xp.float64)
        if network.weight_decay:
            weight_gradient -= network.weight_decay * network.weights[k]
        bias_gradient = gradients.biases[k].astype(xp.float64)
        weight_norms.append(float(xp.linalg.norm(weight_gradient)))
        bias_norms.append(float(xp.linalg.norm(bias_gradient)))
        if k < network.n_layers - 1:
            spreads.append(unit_gradient_spread(xp.hstack([weight_gradient, bias_gradient[:, None]])))

    dead, saturated = [], []
    for k, name in enumerate(network.activation_names):
        a = pre_activations[k]
        h = activations[k + 1]
        if name == "relu":
            # A unit is dead on this batch when no example switches it on.
            dead.append(float(xp.mean(xp.all(a <= 0, axis=0))))
        else:
            dead.append(None)
        if name in _MAXIMUM_SLOPE:
            slope = network.activation_functions[k].derivative(a, h)
            threshold = SATURATION_LEVEL * _MAXIMUM_SLOPE[name]
            saturated.append(float(xp.mean(slope < threshold)))
        else:
            saturated.append(None)

    data_loss = float(loss) - network.l2_penalty()
    return {
        "loss": data_loss,
        "weight_gradient_norm": weight_norms,
        "bias_gradient_norm": bias_norms,
        "dead_fraction": dead,
        "saturated_fraction": saturated,
        "unit_gradient_spread": spreads,
    }


_PER_LAYER_KEYS = (
    "weight_gradient_norm",
    "bias_gradient_norm",
    "unit_gradient_spread",
    "dead_fraction",
    "saturated_fraction",
)
_HISTORY_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


class DiagnosticsRecorder:
    """A trainer callback that records :func:`measure` after every epoch.

    Use it as ``Trainer(..., callbacks=[recorder])``; the trainer calls
    ``recorder(trainer, row)`` after each epoch. With ``run_dir`` set, the whole record is
    rewritten to ``diagnostics.json`` (and a flat ``diagnostics.csv``) after every epoch,
    through a temporary file and a rename.

    Parameters
    ----------
    network : Network
        The network being trained; measured once at construction as epoch 0 when
        ``record_initial`` is true.
    X : array ``(batch, n_0)``
        The fixed diagnostic batch, measured every epoch.
    labels : int array ``(batch,)``
    run_dir : path, optional
        Where to write the files.
    record_initial : bool
        Measure the network before training, as epoch 0.

    Attributes
    ----------
    rows : list of dict
        One dict per measurement: ``epoch``, the history's losses and accuracies when the
        trainer provided them, and the entries of :func:`measure`.
    """

    def __init__(self, network: Network, X, labels, *, run_dir=None, record_initial: bool = True):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a chainrule.Network, got {type(network).__name__}")
        self.network = network
        self.X = network.check_input(X)
        self.labels = network.check_labels(labels, self.X.shape[0])
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.rows: list[dict] = []
        if record_initial:
            self.record(0)

    def __call__(self, trainer, row: dict) -> None:
        self.record(int(row["epoch"]), history_row=row, network=getattr(trainer, "network", None))

    def record(self, epoch: int, *, history_row: dict | None = None, network: Network | None = None) -> dict:
        """Measure the network now, append the row, save if ``run_dir`` is set; return the row."""
        network = self.network if network is None else network
        row: dict = {"epoch": int(epoch)}
        for key in _HISTORY_KEYS:
            value = (history_row or {}).get(key)
            row[key] = float(value) if value is not None else math.nan
        row.update(measure(network, self.X, self.labels))
        self.rows.append(row)
        if self.run_dir is not None:
            self.save(self.run_dir)
        return row

    def metadata(self) -> dict:
        """Return the description saved with the rows: architecture and settings."""
        return {
            "format_version": DIAGNOSTICS_FORMAT_VERSION,
            "layer_sizes": list(self.network.layer_sizes),
            "activations": list(self.network.activation_names),
            "loss": self.network.loss_name,
            "weight_init": self.network.weight_init,
            "diagnostic_batch_size": int(self.X.shape[0]),
            "saturation_level": SATURATION_LEVEL,
        }

    def to_dict(self) -> dict:
        """Return the metadata and the rows as one JSON-ready dict (NaN becomes null)."""
        return _json_ready({**self.metadata(), "rows": self.rows})

    def save(self, run_dir) -> Path:
        """Write ``diagnostics.json`` and ``diagnostics.csv`` into ``run_dir``; return the JSON path."""
        from chainrule.training import atomic_write_text

        run_dir = Path(run_dir)
        path = run_dir / DIAGNOSTICS_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        atomic_write_text(run_dir / DIAGNOSTICS_CSV_FILE, _rows_to_csv(self.rows, self.network.n_layers))
        return path


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, xp.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rows_to_csv(rows: list[dict], n_layers: int) -> str:
    """Flatten the per-layer lists into columns such as ``weight_gradient_norm_1``."""
    columns = ["epoch", *_HISTORY_KEYS, "loss"]
    for key in _PER_LAYER_KEYS:
        count = n_layers if key in ("weight_gradient_norm", "bias_gradient_norm") else n_layers - 1
        columns.extend(f"{key}_{k}" for k in range(1, count + 1))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = [row["epoch"], *(row[key] for key in _HISTORY_KEYS), row["loss"]]
        for key in _PER_LAYER_KEYS:
            values.extend(row[key])
        writer.writerow(
            "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
            for value in values
        )
    return buffer.getvalue()


def recorder_for_run(
    run_dir,
    network: Network,
    X,
    labels,
    *,
    rows: int = DEFAULT_DIAGNOSTIC_ROWS,
    seed: int = 0,
) -> DiagnosticsRecorder:
    """Return a recorder that saves ``diagnostics.json`` and ``.csv`` in ``run_dir`` every epoch.

    The diagnostic batch is ``rows`` rows of ``(X, labels)`` drawn without replacement
    with ``seed`` (all of them when there are fewer), and stays fixed for the whole run,
    so that the epochs compare. The network is measured once before training (epoch 0).

    Parameters
    ----------
    run_dir : path
        The run directory; created if missing.
    network : Network
    X : array ``(n, n_0)``
        Preprocessed training features.
    labels : int array ``(n,)``
        Class indices.
    rows : int
        Size of the diagnostic batch.
    seed : int
        Seed of the row sample.
    """
    from chainrule.validation import check_positive_int

    rows = check_positive_int("rows", rows)
    X = xp.asarray(X)
    labels = xp.asarray(labels)
    if X.ndim == 0 or labels.ndim != 1 or X.shape[0] != labels.shape[0]:
        raise ValueError(
            f"X and labels must have the same number of rows, got X of shape {X.shape} and "
            f"labels of shape {labels.shape}"
        )
    if X.shape[0] > rows:
        chosen = xp.sort(xp.random.default_rng(seed).choice(X.shape[0], rows, replace=False))
        X, labels = X[chosen], labels[chosen]
    return DiagnosticsRecorder(network, X, labels, run_dir=run_dir)


def load_diagnostics(path) -> dict:
    """Read ``diagnostics.json`` from a run directory or a file path.

    Returns the saved dict: ``layer_sizes``, ``activations``, ``loss``, ... and ``rows``,
    with null values turned back into None.
    """
    path = Path(path)
    if path.is_dir():
        path = path / DIAGNOSTICS_FILE
    if not path.is_file():
        raise ValueError(
            f"diagnostics file {path} not found; train with diagnostics on (chainrule train "
            "--diagnostics) or pass the run directory that contains it"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a valid diagnostics file: {error}") from None
    valid = (
        isinstance(data, dict)
        and data.get("format_version") == DIAGNOSTICS_FORMAT_VERSION
        and "rows" in data
    )
    if not valid:
        raise ValueError(
            f"{path} is not a chainrule diagnostics file of format {DIAGNOSTICS_FORMAT_VERSION}"
        )
    return data


# ---------------------------------------------------------------------------------------
# Experiments for a course report: train small networks on a subset and keep curves


@dataclass
class DataSubset:
    """A preprocessed training and test subset of a data set, with the raw test images."""

    X_train: Any
    y_train: Any
    X_test: Any
    y_test: Any
    raw_test: Any
    class_names: list
    name: str

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def _stratified_sample(labels, size: int, seed: int):
    """Return sorted indices of a class-stratified sample of ``size`` rows (all rows if fewer)."""
    from chainrule.datasets import stratified_split

    n = labels.shape[0]
    if size >= n:
        return xp.arange(n)
    _, sample = stratified_split(labels, validation_fraction=size / n, seed=seed)
    return xp.sort(sample)[:size]


def load_subset(
    dataset: str = "fashion_mnist",
    *,
    train_size: int = 5000,
    test_size: int = 1000,
    seed: int = 0,
) -> DataSubset:
    """Load a class-stratified subset of a data set, scaled to [0, 1].

    Parameters
    ----------
    dataset : str
        A built-in name (``mnist``, ``fashion_mnist``) or a path that
        :func:`chainrule.datasets.load_dataset` reads (IDX folder, ``.npz``, ``.csv``).
    train_size, test_size : int
        Rows kept from each split, drawn with ``seed`` in each class's proportion.
    seed : int
    """
    from chainrule import datasets
    from chainrule.preprocessing import Preprocessor
    from chainrule.validation import check_positive_int

    check_positive_int("train_size", train_size)
    check_positive_int("test_size", test_size)
    train = datasets.load_dataset(dataset, "train")
    test = datasets.load_dataset(dataset, "test", label_mapping=train.label_mapping)
    train_rows = _stratified_sample(train.labels, train_size, seed)
    test_rows = _stratified_sample(test.labels, test_size, seed)
    preprocessor = Preprocessor(scale=True)
    X_train = preprocessor.fit_transform(train.features[train_rows])
    return DataSubset(
        X_train=X_train,
        y_train=train.labels[train_rows],
        X_test=preprocessor.transform(test.features[test_rows]),
        y_test=test.labels[test_rows],
        raw_test=test.features[test_rows],
        class_names=list(train.class_names),
        name=str(train.source),
    )


class _EpochEvaluator:
    """Trainer callback: loss and accuracy on the whole training and test sets after each epoch.

    The trainer's own ``train_accuracy`` is a running mean over the epoch's mini-batches,
    taken while the weights change. A curve of training against test accuracy needs both
    measured on the same weights, so this evaluates again at the end of the epoch.
    """

    def __init__(self, network: Network, data: DataSubset):
        self.data = data
        self.rows: list[dict] = []
        self.record(0, network)

    def record(self, epoch: int, network: Network) -> None:
        from chainrule.training import loss_and_accuracy

        data = self.data
        train_loss, train_accuracy = loss_and_accuracy(
            network, network.check_input(data.X_train), data.y_train
        )
        test_loss, test_accuracy = loss_and_accuracy(
            network, network.check_input(data.X_test), data.y_test
        )
        self.rows.append({
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
        })

    def __call__(self, trainer, row: dict) -> None:
        self.record(int(row["epoch"]), trainer.network)


def train_with_curves(
    network: Network,
    data: DataSubset,
    *,
    optimizer="adam",
    learning_rate: float | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    callbacks=(),
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train ``network`` on ``data`` and return end-of-epoch curves.

    Returns
    -------
    list of dict
        One row per epoch, from epoch 0 (before training) to ``epochs``:
        ``epoch``, ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``,
        all measured on the whole subsets after the epoch. Losses are data losses
        without the L2 term.
    """
    from chainrule.training import Trainer

    if isinstance(optimizer, str):
        hyperparameters = {} if learning_rate is None else {"learning_rate": learning_rate}
        optimizer = optimizer_registry.get(optimizer, **hyperparameters)
    evaluator = _EpochEvaluator(network, data)
    trainer = Trainer(
        network,
        optimizer,
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        progress=False,
        quiet=log is None,
        log=log,
        callbacks=[evaluator, *callbacks],
    )
    trainer.fit(data.X_train, data.y_train)
    return evaluator.rows


def _hidden_sizes(hidden_sizes) -> list[int]:
    sizes = [hidden_sizes] if isinstance(hidden_sizes, numbers.Integral) else list(hidden_sizes)
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"hidden sizes must be positive integers, got {hidden_sizes!r}")
    return [int(size) for size in sizes]


def _labelled_log(log, label: str):
    if log is None:
        return None
    return lambda line: log(f"[{label}] {line}")


def compare_losses(
    data: DataSubset,
    *,
    hidden_sizes=(64,),
    activation: str = "relu",
    weight_init: str = "xavier",
    optimizer: str = "adam",
    learning_rate: float | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[dict]]:
    """Train the same network from the same initial weights under each loss.

    Returns ``{"cross_entropy": curves, "mean_squared_error": curves}`` with the rows of
    :func:`train_with_curves`.
    """
    from chainrule import losses

    sizes = [data.n_features, *_hidden_sizes(hidden_sizes), data.n_classes]
    results = {}
    for loss in losses.names():
        # The same seed gives the same initial weights: only the loss differs.
        network = Network(sizes, activation=activation, weight_init=weight_init, loss=loss, seed=seed)
        results[loss] = train_with_curves(
            network, data, optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
            batch_size=batch_size, seed=seed, log=_labelled_log(log, loss),
        )
    return results


def compare_optimizers(
    data: DataSubset,
    *,
    optimizers=None,
    learning_rates: dict | None = None,
    hidden_sizes=(64,),
    activation: str = "relu",
    weight_init: str = "xavier",
    loss: str = "cross_entropy",
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[dict]]:
    """Train the same network from the same initial weights with each optimizer.

    ``optimizers`` defaults to every name in :func:`chainrule.optimizers.names`;
    ``learning_rates`` maps a name to its learning rate, and the others keep their
    optimizer's default. Returns ``{name: curves}``.
    """
    names = optimizer_registry.names() if optimizers is None else list(optimizers)
    learning_rates = dict(learning_rates or {})
    sizes = [data.n_features, *_hidden_sizes(hidden_sizes), data.n_classes]
    results = {}
    for name in names:
        network = Network(sizes, activation=activation, weight_init=weight_init, loss=loss, seed=seed)
        results[name] = train_with_curves(
            network, data, optimizer=name, learning_rate=learning_rates.get(name),
            epochs=epochs, batch_size=batch_size, seed=seed, log=_labelled_log(log, name),
        )
    return results


def compare_activations(
    data: DataSubset,
    *,
    activations=("sigmoid", "relu"),
    hidden_sizes=(64, 64, 64, 64),
    weight_init: str = "xavier",
    optimizer: str = "adam",
    learning_rate: float | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    diagnostic_rows: int = DEFAULT_DIAGNOSTIC_ROWS,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """Train one deep stack per activation with a diagnostics recorder on each.

    Returns ``{activation: record}`` where each record has the form of
    :func:`load_diagnostics` (``activations``, ``layer_sizes``, ``rows``, ...), so the
    per-layer gradient norms of a sigmoid and a ReLU stack can be drawn side by side.
    """
    sizes = [data.n_features, *_hidden_sizes(hidden_sizes), data.n_classes]
    rows = _stratified_sample(data.y_train, diagnostic_rows, seed)
    results = {}
    for activation in activations:
        network = Network(sizes, activation=activation, weight_init=weight_init, seed=seed)
        recorder = DiagnosticsRecorder(network, data.X_train[rows], data.y_train[rows])
        train_with_curves(
            network, data, optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
            batch_size=batch_size, seed=seed, callbacks=[recorder],
            log=_labelled_log(log, activation),
        )
        results[network.activation_names[0]] = recorder.to_dict()
    return results


def accuracy_curves(
    data: DataSubset,
    *,
    hidden_sizes=(64,),
    activation: str = "relu",
    weight_init: str = "xavier",
    loss: str = "cross_entropy",
    optimizer: str = "adam",
    learning_rate: float | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train one network and return its training and test curves (see :func:`train_with_curves`)."""
    sizes = [data.n_features, *_hidden_sizes(hidden_sizes), data.n_classes]
    network = Network(sizes, activation=activation, weight_init=weight_init, loss=loss, seed=seed)
    return train_with_curves(
        network, data, optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
        batch_size=batch_size, seed=seed, log=log,
    )


# ---------------------------------------------------------------------------------------
# The failure gallery


@dataclass
class Failure:
    """A misclassified example: its row, true and predicted class, and ``ŷ`` of the prediction."""

    index: int
    label: int
    predicted: int
    probability: float
    label_probability: float


def most_confident_failures(model_or_network, X, y, count: int = 16) -> list[Failure]:
    """Return the misclassified examples with the highest predicted probability, highest first.

    Parameters
    ----------
    model_or_network : Network or chainrule.training.Model
        As in :func:`chainrule.metrics.evaluate`: a ``Network`` takes features and class
        indices, a ``Model`` raw inputs and the data set's own labels.
    X, y : arrays with ``n`` rows
    count : int
        The maximum number of failures returned. Fewer are returned when the model makes
        fewer mistakes.
    """
    from chainrule.metrics import _network_inputs
    from chainrule.validation import check_positive_int

    count = check_positive_int("count", count)
    network, features, labels = _network_inputs(model_or_network, X, y)
    probabilities = network.predict_proba(features)
    predicted = xp.argmax(probabilities, axis=1)
    wrong = xp.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    order = wrong[xp.argsort(-confidence, kind="stable")][:count]
    return [
        Failure(
            index=int(i),
            label=int(labels[i]),
            predicted=int(predicted[i]),
            probability=float(probabilities[i, predicted[i]]),
            label_probability=float(probabilities[i, labels[i]]),
        )
        for i in order
    ]


# ---------------------------------------------------------------------------------------
# 2-D error surfaces for drawing optimizers' paths


@dataclass(frozen=True)
class Surface:
    """A 2-D error surface ``f(x, y)`` with its gradient and a view for drawing.

    ``function`` accepts arrays of any matching shape (a grid); ``gradient`` takes a point
    ``(2,)`` and returns ``(2,)``. ``learning_rates`` are defaults per optimizer, chosen so
    that every path is visible and stable in ``steps`` steps on this surface.
    """

    name: str
    title: str
    formula: str
    function: Callable
    gradient: Callable
    start: tuple
    x_range: tuple
    y_range: tuple
    minima: tuple
    steps: int
    learning_rates: dict = field(default_factory=dict)
    log_levels: bool = False


def _bowl(x, y):
    return 0.5 * x * x + 5.0 * y * y


def _bowl_gradient(w):
    return xp.array([w[0], 10.0 * w[1]])


def _rosenbrock(x, y):
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def _rosenbrock_gradient(w):
    x, y = w
    return xp.array([-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)])


def _saddle(x, y):
    return x * x + 0.25 * y ** 4 - 0.5 * y * y


def _saddle_gradient(w):
    x, y = w
    return xp.array([2.0 * x, y ** 3 - y])


SURFACES: dict[str, Surface] = {
    "bowl": Surface(
        name="bowl",
        title="Quadratic bowl, 10:1 curvature",
        formula="f = x²/2 + 5y²",
        function=_bowl,
        gradient=_bowl_gradient,
        start=(-4.0, 1.5),
        x_range=(-4.5, 1.5),
        y_range=(-2.0, 2.0),
        minima=((0.0, 0.0),),
        steps=60,
        learning_rates={"sgd": 0.18, "momentum": 0.02, "nag": 0.02, "rmsprop": 0.1,
                        "adam": 0.3, "nadam": 0.3},
    ),
    "rosenbrock": Surface(
        name="rosenbrock",
        title="Rosenbrock valley",
        formula="f = (1 − x)² + 100 (y − x²)²",
        function=_rosenbrock,
        gradient=_rosenbrock_gradient,
        start=(-1.5, 2.0),
        x_range=(-2.0, 2.0),
        y_range=(-1.0, 3.0),
        minima=((1.0, 1.0),),
        steps=500,
        learning_rates={"sgd": 1e-3, "momentum": 5e-4, "nag": 5e-4, "rmsprop": 1e-2,
                        "adam": 0.1, "nadam": 0.1},
        log_levels=True,
    ),
    "saddle": Surface(
        name="saddle",
        title="Saddle at the origin between minima at (0, ±1)",
        formula="f = x² + y⁴/4 − y²/2",
        function=_saddle,
        gradient=_saddle_gradient,
        start=(-1.5, 1e-3),
        x_range=(-2.0, 2.0),
        y_range=(-1.6, 1.6),
        minima=((0.0, 1.0), (0.0, -1.0)),
        steps=80,
        learning_rates={"sgd": 0.1, "momentum": 0.02, "nag": 0.02, "rmsprop": 0.05,
                        "adam": 0.05, "nadam": 0.05},
    ),
}


def optimizer_paths(
    surface: str | Surface,
    optimizers=None,
    *,
    steps: int | None = None,
    learning_rates: dict | None = None,
) -> dict[str, Any]:
    """Run each optimizer on a 2-D surface with :func:`chainrule.optimizers.trajectory`.

    Parameters
    ----------
    surface : str or Surface
        A key of :data:`SURFACES` (``bowl``, ``rosenbrock``, ``saddle``) or a Surface.
    optimizers : sequence of str, optional
        Optimizer names; all of :func:`chainrule.optimizers.names` by default.
    steps : int, optional
        Steps per path; the surface's default when omitted.
    learning_rates : dict, optional
        ``{name: learning rate}`` overriding the surface's defaults.

    Returns
    -------
    dict
        ``{name: array (steps + 1, 2)}``, the start followed by every iterate.
    """
    if isinstance(surface, str):
        try:
            surface = SURFACES[surface.lower()]
        except KeyError:
            raise ValueError(
                f"unknown surface {surface!r}; valid surfaces are {', '.join(SURFACES)}"
            ) from None
    names = optimizer_registry.names() if optimizers is None else list(optimizers)
    steps = surface.steps if steps is None else steps
    rates = {**surface.learning_rates, **(learning_rates or {})}
    start = xp.array(surface.start, dtype=xp.float64)
    paths = {}
    for name in names:
        hyperparameters = {"learning_rate": rates[name]} if name in rates else {}
        optimizer = optimizer_registry.get(name, **hyperparameters)
        iterates = optimizer_registry.trajectory(optimizer, surface.gradient, start, steps)
        paths[optimizer.name] = xp.vstack([start, *iterates]) if iterates else start[None]
    return paths
