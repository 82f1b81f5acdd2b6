"""Gradient checking: backpropagation against float64 central differences.

For each parameter entry ``θ_i`` the numeric derivative is
``(L(θ + h e_i) − L(θ − h e_i)) / 2h``, with error ``O(h²)`` for a smooth loss. Per
parameter array the reported error is

    max_i |analytic_i − numeric_i| / max(max_i |analytic_i|, max_i |numeric_i|, 1e-12)

ReLU and leaky ReLU have a kink at 0, where the two one-sided slopes differ and the
central difference measures their average, not the derivative backpropagation uses
(0 at the kink). An entry is skipped, and counted, when moving it by ``±h`` changes
which side of 0 any such pre-activation lies on: that is, when a kink lies within ``h``.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainrule.backend import xp
from chainrule.network import Network

DEFAULT_STEP = 1e-4
DEFAULT_TOLERANCE = 1e-6
MAX_ENTRIES_CHECKED_IN_FULL = 10_000
SAMPLED_ENTRIES = 1_000
_KINKED = ("relu", "leaky_relu")


@dataclass
class GradcheckRow:
    """The check of one parameter array (``W1``, ``b1``, ...)."""

    name: str
    shape: tuple
    error: float
    checked: int
    skipped: int
    passed: bool


@dataclass
class GradcheckReport:
    """Per-array results of :func:`gradcheck`; ``passed`` is true when every row passed."""

    rows: list
    tolerance: float
    step: float

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def max_error(self) -> float:
        return max((row.error for row in self.rows), default=0.0)

    def format_table(self) -> str:
        """Return the report as a plain-text table, one row per parameter array."""
        header = f"{'array':<6} {'shape':<12} {'error':>10} {'checked':>8} {'skipped':>8}  result"
        lines = [header, "-" * len(header)]
        for row in self.rows:
            shape = "x".join(str(n) for n in row.shape)
            result = "PASS" if row.passed else "FAIL"
            lines.append(
                f"{row.name:<6} {shape:<12} {row.error:>10.2e} {row.checked:>8} "
                f"{row.skipped:>8}  {result}"
            )
        verdict = "passed" if self.passed else "FAILED"
        lines.append(
            f"gradient check {verdict}: max error {self.max_error:.2e}, tolerance "
            f"{self.tolerance:.0e}, central differences with h = {self.step:g} in float64"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def _loss_and_kink_pattern(net: Network, X, labels):
    """Return the loss (with L2 term) and the sign pattern (a > 0) of every ReLU-type unit.

    One forward pass serves both. ``X`` and ``labels`` must already be validated. The
    pattern is None when the network has no ReLU-type layer.
    """
    pre_activations, _ = net.forward_trace(X)
    loss = net.loss_function.value(pre_activations[-1], labels) + net.l2_penalty()
    masks = [
        (pre_activations[k] > 0).ravel()
        for k, name in enumerate(net.activation_names)
        if name in _KINKED
    ]
    return loss, (xp.concatenate(masks) if masks else None)


def gradcheck(
    net: Network,
    X,
    labels,
    *,
    step: float = DEFAULT_STEP,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> GradcheckReport:
    """Compare the network's backpropagated gradients with float64 central differences.

    Runs on a float64 copy of ``net`` whatever its dtype, so ``net`` is never changed.
    Arrays of up to 10,000 entries are checked in full; larger ones on a sample of 1,000
    entries drawn with ``seed``.

    Parameters
    ----------
    net : Network
    X : array ``(batch, n_0)``
    labels : int array ``(batch,)``
    step : float
        ``h`` in the central difference.
    tolerance : float
        An array passes when its error is below this.
    seed : int
        Seed of the entry sample for large arrays.

    Returns
    -------
    GradcheckReport
        One row per weight and bias array, and ``passed``.
    """
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step!r}")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance!r}")
    checked_net = net.copy(dtype="float64")
    X = checked_net.check_input(X)
    labels = checked_net.check_labels(labels, X.shape[0])
    _, analytic = checked_net.loss_and_gradients(X, labels)

    rng = xp.random.default_rng(seed)
    parameters = checked_net.parameters
    parameter_views = [
        view for pair in zip(*checked_net._layer_views(parameters)) for view in pair
    ]
    analytic_views = [view for pair in zip(analytic.weights, analytic.biases) for view in pair]
    _, base_pattern = _loss_and_kink_pattern(checked_net, X, labels)

    rows = []
    for name, view, analytic_view in zip(
        checked_net.parameter_names(), parameter_views, analytic_views
    ):
        flat_view = view.reshape(-1)
        if flat_view.size <= MAX_ENTRIES_CHECKED_IN_FULL:
            entries = xp.arange(flat_view.size)
        else:
            entries = xp.sort(rng.choice(flat_view.size, SAMPLED_ENTRIES, replace=False))

        analytic_values, numeric_values, skipped = [], [], 0
        for i in entries:
            original = flat_view[i]
            flat_view[i] = original + step
            loss_plus, pattern_plus = _loss_and_kink_pattern(checked_net, X, labels)
            flat_view[i] = original - step
            loss_minus, pattern_minus = _loss_and_kink_pattern(checked_net, X, labels)
            flat_view[i] = original

            if base_pattern is not None and not (
                xp.array_equal(pattern_plus, base_pattern)
                and xp.array_equal(pattern_minus, base_pattern)
            ):
                skipped += 1
                continue
            numeric_values.append((loss_plus - loss_minus) / (2.0 * step))
            analytic_values.append(analytic_view.reshape(-1)[i])

        analytic_array = xp.asarray(analytic_values, dtype=xp.float64)
        numeric_array = xp.asarray(numeric_values, dtype=xp.float64)
        if analytic_array.size:
            scale = max(
                float(xp.max(xp.abs(analytic_array))),
                float(xp.max(xp.abs(numeric_array))),
                1e-12,
            )
            error = float(xp.max(xp.abs(analytic_array - numeric_array))) / scale
        else:
            error = 0.0
        rows.append(
            GradcheckRow(
                name=name,
                shape=tuple(view.shape),
                error=error,
                checked=int(analytic_array.size),
                skipped=skipped,
                passed=error < tolerance,
            )
        )
    return GradcheckReport(rows=rows, tolerance=tolerance, step=step)
