"""Output losses over ``ŷ = softmax(a_L)`` and their gradients at the output pre-activation.

Both losses are averaged over the batch, so the gradient each one returns,
``G_L = ∇_{A_L} L`` of shape ``(batch, classes)``, already carries the factor ``1 / batch``
that then flows through the whole backward pass.

cross_entropy
    ``L = −log ŷ_y``. Through the softmax the gradient collapses to ``ŷ − e(y)``: the
    ``1/ŷ_y`` of the log's derivative cancels the ``ŷ_y`` that the softmax Jacobian
    contributes. The loss itself is computed from the logits with log-sum-exp,
    ``L = log Σ_j exp(a_j) − a_y``, so it never takes ``log 0``.
mean_squared_error
    ``L = ½ Σ_k (ŷ_k − e(y)_k)²``. Here nothing cancels: the gradient with respect to ``ŷ``
    is ``d = ŷ − e(y)``, and the full softmax Jacobian ``diag(ŷ) − ŷ ŷᵀ`` turns it into
    ``ŷ ⊙ (d − ŷ·d)``. Using ``ŷ − e(y)`` here would be wrong.
"""

from __future__ import annotations

from chainrule.backend import xp


def softmax(logits, out=None):
    """Compute row-wise softmax of ``logits`` ``(batch, classes)`` without overflow.

    Softmax does not change when a constant is subtracted from a row, so subtracting the
    row maximum keeps every ``exp`` argument at or below 0. The largest term is then
    exactly 1, so the denominator is never 0 either.
    """
    logits = xp.asarray(logits)
    one_row = logits.ndim == 1
    z = logits.reshape(1, -1) if one_row else logits
    out = xp.subtract(z, z.max(axis=1, keepdims=True), out=out)
    xp.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out.reshape(logits.shape) if one_row else out


def log_softmax(logits):
    """Compute row-wise ``log softmax`` with log-sum-exp (finite for finite logits)."""
    logits = xp.asarray(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


class Loss:
    """A loss over softmax outputs; subclasses define the value and the output gradient."""

    name: str = ""

    def value(self, logits, labels) -> float:
        """Return the loss averaged over the batch."""
        return self.value_and_gradient(logits, labels)[0]

    def value_and_gradient(self, logits, labels, out=None, batch_size=None):
        """Return ``(mean loss, G_L)`` for ``logits`` ``(batch, classes)`` and integer labels.

        ``G_L`` is the gradient of the mean loss with respect to the logits, written into
        ``out`` when given (shape and dtype of ``logits``). When ``logits`` is one block
        of rows of a larger batch, ``batch_size`` is that batch's size: ``G_L`` is then
        divided by it, so the blocks' gradients add up to the batch's. The returned loss
        is the mean over the rows given either way.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    name = "cross_entropy"

    def value_and_gradient(self, logits, labels, out=None, batch_size=None):
        rows = xp.arange(logits.shape[0])

        # Log-sum-exp with the row maximum subtracted, so that no exp overflows and the
        # sum is at least 1.
        shifted = xp.subtract(logits, logits.max(axis=1, keepdims=True), out=out)
        exp_shifted = xp.exp(shifted)
        sums = exp_shifted.sum(axis=1)
        log_sums = xp.log(sums)
        loss = float(xp.mean(log_sums - shifted[rows, labels], dtype=xp.float64))

        # Output gradient: G_L = (ŷ − e(y)) / batch, formed in the buffer that held the
        # shifted logits.
        probabilities = xp.divide(exp_shifted, sums[:, None], out=shifted)
        probabilities[rows, labels] -= 1.0
        probabilities *= 1.0 / (batch_size or logits.shape[0])
        return loss, probabilities


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def value_and_gradient(self, logits, labels, out=None, batch_size=None):
        rows = xp.arange(logits.shape[0])

        probabilities = softmax(logits)
        difference = probabilities.copy()
        difference[rows, labels] -= 1.0
        loss = float(0.5 * xp.mean(xp.sum(difference * difference, axis=1, dtype=xp.float64)))

        # Chain rule through the full softmax Jacobian J = diag(ŷ) − ŷ ŷᵀ:
        # J d = ŷ ⊙ (d − (ŷ · d)), one dot product per row.
        projection = xp.sum(probabilities * difference, axis=1, keepdims=True)
        difference -= projection
        gradient = xp.multiply(probabilities, difference, out=out)
        gradient *= 1.0 / (batch_size or logits.shape[0])
        return loss, gradient


_LOSSES = {"cross_entropy": CrossEntropy, "mean_squared_error": MeanSquaredError}
_ALIASES = {
    "crossentropy": "cross_entropy",
    "categorical_cross_entropy": "cross_entropy",
    "log_loss": "cross_entropy",
    "mse": "mean_squared_error",
    "squared_error": "mean_squared_error",
}


def names() -> list[str]:
    """Return the canonical loss names."""
    return list(_LOSSES)


def canonical_name(name: str) -> str:
    """Return the canonical spelling of a loss name (case-insensitive, aliases resolved)."""
    if not isinstance(name, str):
        raise TypeError(f"loss must be a name (str), got {type(name).__name__} {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _LOSSES:
        valid = ", ".join(names() + sorted(_ALIASES))
        raise ValueError(f"unknown loss {name!r}; valid names are: {valid}")
    return key


def get(name: str | Loss) -> Loss:
    """Return the loss called ``name`` (case-insensitive), or ``name`` itself if it is one."""
    if isinstance(name, Loss):
        return name
    return _LOSSES[canonical_name(name)]()


def cross_entropy(logits, labels) -> float:
    """Return the mean cross-entropy of integer ``labels`` under ``softmax(logits)``."""
    logits = xp.atleast_2d(xp.asarray(logits))
    return CrossEntropy().value(logits, xp.asarray(labels))
