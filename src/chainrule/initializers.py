"""Weight initialisations. Biases always start at zero.

Each initialiser fills a weight matrix ``W_k`` of shape ``(fan_out, fan_in)`` from a
``numpy.random.Generator``:

==============  ===========================================================  ===========================
name            distribution                                                 source
==============  ===========================================================  ===========================
random          normal, standard deviation 0.01                              the course's "random"
xavier          normal, std ``sqrt(2 / (fan_in + fan_out))`` (xavier_normal)  Glorot and Bengio (2010)
xavier_uniform  uniform on ``±sqrt(6 / (fan_in + fan_out))``                  Glorot and Bengio (2010)
he              normal, std ``sqrt(2 / fan_in)``                              He et al. (2015)
zeros           all zero: every unit of a layer stays identical (no symmetry breaking)
==============  ===========================================================  ===========================

Xavier keeps the variance of activations and gradients roughly constant through
sigmoid and tanh layers; He doubles it to make up for ReLU zeroing half of its inputs.
``random`` with its small fixed scale shrinks the signal in each layer, which is the point
of comparing it with the others.
"""

from __future__ import annotations

import math

from chainrule.backend import xp

RANDOM_STANDARD_DEVIATION = 0.01


def _random(rng, fan_out: int, fan_in: int, dtype):
    return (rng.standard_normal((fan_out, fan_in)) * RANDOM_STANDARD_DEVIATION).astype(dtype)


def _xavier_normal(rng, fan_out: int, fan_in: int, dtype):
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return (rng.standard_normal((fan_out, fan_in)) * std).astype(dtype)


def _xavier_uniform(rng, fan_out: int, fan_in: int, dtype):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(dtype)


def _he_normal(rng, fan_out: int, fan_in: int, dtype):
    std = math.sqrt(2.0 / fan_in)
    return (rng.standard_normal((fan_out, fan_in)) * std).astype(dtype)


def _zeros(rng, fan_out: int, fan_in: int, dtype):
    return xp.zeros((fan_out, fan_in), dtype=dtype)


_INITIALIZERS = {
    "random": _random,
    "xavier": _xavier_normal,
    "xavier_uniform": _xavier_uniform,
    "he": _he_normal,
    "zeros": _zeros,
}
_ALIASES = {
    "xavier_normal": "xavier",
    "glorot": "xavier",
    "glorot_normal": "xavier",
    "glorot_uniform": "xavier_uniform",
    "he_normal": "he",
    "kaiming": "he",
    "zero": "zeros",
}


def names() -> list[str]:
    """Return the canonical initialisation names."""
    return list(_INITIALIZERS)


def canonical_name(name: str) -> str:
    """Return the canonical spelling of an initialisation name (case-insensitive)."""
    if not isinstance(name, str):
        raise TypeError(f"weight_init must be a name (str), got {type(name).__name__} {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _INITIALIZERS:
        valid = ", ".join(names() + sorted(_ALIASES))
        raise ValueError(f"unknown weight initialisation {name!r}; valid names are: {valid}")
    return key


def initialize_weights(name: str, rng, fan_out: int, fan_in: int, dtype="float32"):
    """Return a new ``(fan_out, fan_in)`` weight matrix drawn by the initialiser ``name``."""
    return _INITIALIZERS[canonical_name(name)](rng, fan_out, fan_in, xp.dtype(dtype))
