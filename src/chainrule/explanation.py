"""Inspect a trained network on single examples: the backward walk and the most confident mistakes.

:func:`explain` returns every quantity of the course's derivation for one example, in its
order, with the gradients of :meth:`Network.loss_and_gradients` on a batch of one (so
``1/B = 1`` and each row is a column vector of the derivation).
:func:`most_confident_failures` returns the misclassified examples with the highest
predicted probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chainrule.backend import xp
from chainrule.losses import softmax
from chainrule.network import Network

__all__ = [
    "ArraySummary",
    "LayerStep",
    "Explanation",
    "explain",
    "input_gradient",
    "Failure",
    "most_confident_failures",
]


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
