"""Hidden-layer activation functions ``g`` and their derivatives ``g'``.

Each activation computes ``h = g(a)`` and, in the backward pass, turns the gradient with
respect to its output into the gradient with respect to its input,
``∇a = ∇h ⊙ g'(a)``. Where ``g'`` is cheapest to form from the output ``h`` (sigmoid,
tanh, ReLU), it is formed from ``h``, as the course's derivation recommends.

============  =====================  =====================================
name          g(a)                   g'(a)
============  =====================  =====================================
identity      a                      1
sigmoid       1 / (1 + exp(-a))      h (1 - h)
tanh          tanh(a)                1 - h²
relu          max(0, a)              1 where a > 0, else 0 (0 at the kink)
leaky_relu    a if a > 0 else 0.01a  1 where a > 0, else 0.01
============  =====================  =====================================

``logistic`` is accepted as another name for ``sigmoid`` (scikit-learn's spelling).
"""

from __future__ import annotations

from chainrule.backend import xp

LEAKY_RELU_SLOPE = 0.01


class Activation:
    """An element-wise activation ``g`` with its derivative.

    Subclasses implement :meth:`forward` and :meth:`backward`. Both accept an ``out``
    array so the trainer can reuse buffers; ``out`` may be the same array as the
    gradient passed to :meth:`backward`.
    """

    name: str = ""

    def forward(self, a, out=None):
        """Return ``h = g(a)``, shape ``(batch, units)`` like ``a``."""
        raise NotImplementedError

    def derivative(self, a, h):
        """Return ``g'(a)`` as a new array; ``h`` is ``g(a)``, already computed."""
        raise NotImplementedError

    def backward(self, grad_h, a, h, out=None):
        """Return ``∇a = ∇h ⊙ g'(a)`` given the forward pass's ``a`` and ``h``.

        Every built-in activation forms ``g'`` from ``h`` alone, and the training fast
        path passes ``a=None`` because it overwrites ``A_k`` with ``H_k``.
        """
        return xp.multiply(grad_h, self.derivative(a, h), out=out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(Activation):
    name = "identity"

    def forward(self, a, out=None):
        if out is None:
            return a.copy()
        xp.copyto(out, a)
        return out

    def derivative(self, a, h):
        return xp.ones_like(a)

    def backward(self, grad_h, a, h, out=None):
        if out is None:
            return grad_h.copy()
        if out is not grad_h:
            xp.copyto(out, grad_h)
        return out


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, a, out=None):
        # 1 / (1 + exp(-a)) is exact wherever exp(-a) is finite. Where exp(-a) overflows,
        # the result rounds to 0 and the overflow is harmless, so its warning is silenced.
        # Below a = -30 the value is recomputed as e^a / (1 + e^a), which keeps tiny
        # results such as 4.5e-309 at a = -710 in float64. The tail is read before ``out``
        # is written, because ``out`` may be ``a`` itself.
        tail = a < -30.0
        tail_values = a[tail] if tail.any() else None
        with xp.errstate(over="ignore"):
            h = xp.negative(a, out=out)
            xp.exp(h, out=h)
            h += 1.0
            xp.reciprocal(h, out=h)
        if tail_values is not None:
            e = xp.exp(tail_values)
            h[tail] = e / (1.0 + e)
        return h

    def derivative(self, a, h):
        return h * (1.0 - h)

    def backward(self, grad_h, a, h, out=None):
        # ∇a = ∇h ⊙ h (1 - h), formed without a temporary the size of the batch twice.
        one_minus_h = 1.0 - h
        one_minus_h *= h
        return xp.multiply(grad_h, one_minus_h, out=out)


class Tanh(Activation):
    name = "tanh"

    def forward(self, a, out=None):
        return xp.tanh(a, out=out)

    def derivative(self, a, h):
        return 1.0 - h * h

    def backward(self, grad_h, a, h, out=None):
        slope = h * h
        xp.subtract(1.0, slope, out=slope)
        return xp.multiply(grad_h, slope, out=out)


class ReLU(Activation):
    name = "relu"

    def forward(self, a, out=None):
        return xp.maximum(a, 0.0, out=out)

    def derivative(self, a, h):
        # The derivative at the kink a = 0 is taken as 0, as PyTorch and scikit-learn do.
        return (a > 0).astype(a.dtype)

    def backward(self, grad_h, a, h, out=None):
        # h = max(a, 0) is 0 exactly where a <= 0, so the mask comes from h. Multiplying
        # by the boolean mask is many times faster than masked assignment.
        return xp.multiply(grad_h, h > 0, out=out)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, slope: float = LEAKY_RELU_SLOPE):
        self.slope = float(slope)

    def forward(self, a, out=None):
        h = xp.multiply(a, self.slope, out=out)
        return xp.maximum(a, h, out=h)

    def derivative(self, a, h):
        return xp.where(a > 0, 1.0, self.slope).astype(a.dtype)

    def backward(self, grad_h, a, h, out=None):
        # For a positive slope, h > 0 exactly where a > 0, so the factor g' is
        # slope + (1 − slope)·[h > 0], formed without NumPy's slow masked operations.
        factor = xp.multiply(h > 0, 1.0 - self.slope, dtype=h.dtype)
        factor += self.slope
        return xp.multiply(grad_h, factor, out=out)

    def __repr__(self) -> str:
        return f"LeakyReLU(slope={self.slope})"


_ACTIVATIONS = {
    "identity": Identity,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
}
_ALIASES = {"logistic": "sigmoid", "linear": "identity", "leakyrelu": "leaky_relu"}


def names() -> list[str]:
    """Return the canonical activation names, in a stable order."""
    return list(_ACTIVATIONS)


def canonical_name(name: str) -> str:
    """Return the canonical spelling of an activation name (case-insensitive, aliases resolved)."""
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (str), got {type(name).__name__} {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _ACTIVATIONS:
        valid = ", ".join(names() + sorted(_ALIASES))
        raise ValueError(f"unknown activation {name!r}; valid names are: {valid}")
    return key


def get(name: str | Activation) -> Activation:
    """Return the activation called ``name`` (case-insensitive), or ``name`` itself if it is one."""
    if isinstance(name, Activation):
        return name
    return _ACTIVATIONS[canonical_name(name)]()


def sigmoid(a):
    """Compute the logistic sigmoid without overflow at either tail."""
    return Sigmoid().forward(xp.asarray(a))
