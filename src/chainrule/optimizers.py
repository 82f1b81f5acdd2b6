"""First-order optimizers: SGD, momentum, Nesterov, RMSprop, Adam and Nadam.

Each optimizer follows one update rule, written as math in its class docstring, and updates
a parameter array in place from a gradient of the same shape. Every optimizer receives the
gradient the network returns, L2 term included, so weight decay behaves the same under all
of them. The symbols used below are

=======  =====================  ==========================================================
symbol   argument               meaning
=======  =====================  ==========================================================
w        ``params``             the parameters, updated in place
g        ``gradient``           the gradient of the loss at the point the rule names
η        ``learning_rate``      the step size (writable; a schedule may set it each epoch)
β        ``momentum``           the velocity decay of ``momentum`` and ``nag``
β        ``beta``               the decay of RMSprop's squared-gradient average
β1, β2   ``beta1``, ``beta2``   the decays of Adam's and Nadam's first and second moments
ε        ``epsilon``            the term that keeps the denominator away from zero
t        ``step_count``         the number of steps taken, counted from 1 in the formulas
=======  =====================  ==========================================================

Nesterov's method needs the gradient somewhere other than at ``w``, so every optimizer
has :meth:`Optimizer.lookahead_point`. A training loop runs::

    point = optimizer.lookahead_point(params)   # None: take the gradient at params
    gradient = gradient_at(params if point is None else point)
    optimizer.step(params, gradient)

and :func:`trajectory` runs that loop on any function given by its gradient.

>>> import numpy as np
>>> from chainrule import optimizers
>>> path = optimizers.trajectory(optimizers.get("nag", learning_rate=0.1, momentum=0.9),
...                              lambda w: w, np.array([1.0]), steps=3)
>>> [round(float(w[0]), 5) for w in path]
[0.9, 0.729, 0.51759]
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from chainrule import parallel
from chainrule.backend import xp

__all__ = [
    "Optimizer",
    "SGD",
    "Momentum",
    "NAG",
    "RMSprop",
    "Adam",
    "Nadam",
    "get",
    "names",
    "hyperparameter_names",
    "trajectory",
    "clip_gradient_norm",
]

# PyTorch's clip_grad_norm_ adds this to the norm before dividing, so a zero gradient
# never divides by zero; the same constant keeps the two interchangeable.
CLIP_EPSILON = 1e-6


# --- hyperparameter checks -------------------------------------------------------------


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def _check_learning_rate(value: Any) -> float:
    value = _check_real("learning_rate", value)
    if value < 0.0:
        raise ValueError(
            f"learning_rate must be >= 0, got {value!r}; pass a non-negative step size "
            "such as 0.01 for sgd or 0.001 for adam"
        )
    return value


def _check_decay(name: str, value: Any, typical: float) -> float:
    value = _check_real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"{name} must be in [0, 1), got {value!r}; it is the decay rate of a running "
            f"average, typically {typical}"
        )
    return value


def _check_epsilon(value: Any) -> float:
    value = _check_real("epsilon", value)
    if value <= 0.0:
        raise ValueError(
            f"epsilon must be > 0, got {value!r}; it keeps the denominator away from zero, "
            "typically 1e-8"
        )
    return value


# --- the base class ----------------------------------------------------------------------


class Optimizer:
    """Base class: state handling, checks and serialisation shared by every optimizer.

    A subclass names its state arrays in ``state_names``, its hyperparameters in
    ``hyperparameter_names`` and implements :meth:`_update`. State arrays are created on
    the first :meth:`step` with the shape and dtype of ``params``, so a float32 network
    keeps float32 state. The update uses in-place ufuncs and preallocated scratch arrays,
    so a step allocates no arrays. Every rule is element-wise, which lets :meth:`step`
    hand contiguous pieces of the arrays to several threads.

    Attributes
    ----------
    name : str
        The name :func:`get` accepts.
    learning_rate : float
        η. Writable: a training loop may set it before any step, for example from a
        schedule. It must be finite and >= 0.
    step_count : int
        t, the number of steps taken so far (0 before the first step).
    """

    name: str = ""
    state_names: tuple[str, ...] = ()
    hyperparameter_names: tuple[str, ...] = ("learning_rate",)
    # How many parameter-shaped scratch arrays _update needs.
    scratch_count: int = 1

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = learning_rate
        self.step_count = 0
        self._scratch: list = []
        for state_name in self.state_names:
            setattr(self, state_name, None)

    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = _check_learning_rate(value)

    # The public methods.

    def lookahead_point(self, params):
        """Return the point where the next gradient must be taken, or None for ``params``.

        Only Nesterov's method takes the gradient away from ``params``. ``params`` is
        never modified.

        Parameters
        ----------
        params : ndarray, any shape
            The current parameters.

        Returns
        -------
        ndarray of params' shape and dtype, or None
            None means "take the gradient at ``params``".
        """
        return None

    def step(self, params, gradient, *, threads: int = 1) -> None:
        """Apply one update to ``params`` in place.

        Parameters
        ----------
        params : ndarray of a floating dtype, any shape
            The parameters; a training loop passes its flat 1-D buffer.
        gradient : array_like, same shape as ``params``
            The gradient at the point :meth:`lookahead_point` returned (at ``params``
            where that is None). It is not modified.
        threads : int, default 1
            How many threads may share the update. Each takes a contiguous piece of at
            least 131,072 entries, so smaller arrays use one thread. The pieces are
            independent, so the result is bitwise the same for any ``threads``.

        Raises
        ------
        TypeError
            If ``params`` is not a writable floating-point ndarray.
        ValueError
            If ``gradient`` or the optimizer's state has another shape than ``params``.
        """
        self._check_params(params)
        if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        gradient = xp.asarray(gradient)
        if gradient.shape != params.shape:
            raise ValueError(
                f"gradient has shape {gradient.shape} but params have shape {params.shape}; "
                "they must match element for element"
            )
        self._prepare_state(params)
        self.step_count += 1
        state = tuple(getattr(self, state_name) for state_name in self.state_names)
        _run_in_pieces(self._update, params, gradient, state, tuple(self._scratch), int(threads))

    def reset(self) -> None:
        """Forget the step count and every state array, as if no step had been taken."""
        self.step_count = 0
        self._scratch = []
        for state_name in self.state_names:
            setattr(self, state_name, None)

    def state_dict(self) -> dict:
        """Return the state as ``{"step_count": int, <state name>: ndarray copy, ...}``.

        Every value is an int or a NumPy array, so the dictionary can be written with
        ``numpy.savez`` and read back with ``allow_pickle=False``. Before the first step
        the state arrays do not exist yet and only ``step_count`` is present.
        Hyperparameters are in :meth:`config`, not here.
        """
        state: dict = {"step_count": int(self.step_count)}
        if self._has_state():
            for state_name in self.state_names:
                state[state_name] = getattr(self, state_name).copy()
        return state

    def load_state_dict(self, state: Mapping) -> None:
        """Restore the state that :meth:`state_dict` returned; the exact inverse.

        Values read back from an ``.npz`` file (0-d arrays for ``step_count``) are
        accepted. The arrays are copied.

        Raises
        ------
        ValueError
            If a key is missing or unknown, or ``step_count`` is not a non-negative
            integer. Also if the arrays are not floating point, or their shapes differ
            from one another or from the state this optimizer already has, or if they
            are absent although ``step_count`` is above 0.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping such as a dict, got {type(state).__name__}")
        expected = {"step_count", *self.state_names}
        unknown = sorted(set(state) - expected)
        if unknown:
            raise ValueError(
                f"{self.name} state has unknown key(s) {unknown}; expected {sorted(expected)}"
            )
        if "step_count" not in state:
            raise ValueError(f"{self.name} state is missing 'step_count'")
        step_count = _as_step_count(state["step_count"])

        present = [state_name for state_name in self.state_names if state_name in state]
        if not present:
            if step_count > 0 and self.state_names:
                raise ValueError(
                    f"{self.name} state has step_count {step_count} but none of "
                    f"{list(self.state_names)}; a state with steps needs its arrays"
                )
            self.reset()
            self.step_count = step_count
            return
        missing = [state_name for state_name in self.state_names if state_name not in state]
        if missing:
            raise ValueError(f"{self.name} state is missing {missing}")

        arrays = {state_name: xp.array(state[state_name], copy=True) for state_name in present}
        shapes = {state_name: array.shape for state_name, array in arrays.items()}
        for state_name, array in arrays.items():
            if not xp.issubdtype(array.dtype, xp.floating):
                raise ValueError(
                    f"{self.name} state {state_name!r} must be a floating-point array, "
                    f"got dtype {array.dtype}"
                )
        if len(set(shapes.values())) > 1:
            raise ValueError(f"{self.name} state arrays must share one shape, got {shapes}")
        if self._has_state():
            current_shape = getattr(self, self.state_names[0]).shape
            loaded_shape = next(iter(shapes.values()))
            if loaded_shape != current_shape:
                raise ValueError(
                    f"{self.name} state arrays have shape {loaded_shape} but this optimizer "
                    f"holds state of shape {current_shape}; call reset() first to load state "
                    "for other parameters"
                )

        self.step_count = step_count
        for state_name, array in arrays.items():
            setattr(self, state_name, array)
        self._scratch = []

    def config(self) -> dict:
        """Return ``{"name": ..., "learning_rate": ..., <hyperparameter>: ...}``, JSON-able.

        ``get(**config)`` rebuilds the optimizer, without its state.
        """
        settings: dict = {"name": self.name}
        for hyperparameter in self.hyperparameter_names:
            settings[hyperparameter] = float(getattr(self, hyperparameter))
        return settings

    def __repr__(self) -> str:
        settings = ", ".join(
            f"{hyperparameter}={getattr(self, hyperparameter)!r}"
            for hyperparameter in self.hyperparameter_names
        )
        return f"{type(self).__name__}({settings})"

    # The pieces subclasses build on.

    def _update(self, params, gradient, state: tuple, work: tuple) -> None:
        """Apply the rule to one piece: ``state`` contains the arrays named in
        ``state_names`` and ``work`` the scratch arrays, all of ``params``' shape."""
        raise NotImplementedError

    def _has_state(self) -> bool:
        return bool(self.state_names) and getattr(self, self.state_names[0]) is not None

    def _check_params(self, params) -> None:
        if not isinstance(params, xp.ndarray):
            raise TypeError(
                f"params must be a NumPy array (it is updated in place), got "
                f"{type(params).__name__}"
            )
        if not xp.issubdtype(params.dtype, xp.floating):
            raise TypeError(
                f"params must have a floating-point dtype, got {params.dtype}; convert them "
                "with params.astype(numpy.float32) or numpy.float64 first"
            )
        if not params.flags.writeable:
            raise TypeError("params must be writable, because the update happens in place")

    def _prepare_state(self, params) -> None:
        """Create the state and scratch arrays on the first step, or check they still fit."""
        if self.state_names:
            first = getattr(self, self.state_names[0])
            if first is None:
                for state_name in self.state_names:
                    setattr(self, state_name, xp.zeros(params.shape, dtype=params.dtype))
            elif first.shape != params.shape:
                raise ValueError(
                    f"params have shape {params.shape} but the {self.name} state was built "
                    f"for shape {first.shape}; call reset() before optimizing other parameters"
                )
            elif first.dtype != params.dtype:
                # Loaded state of another precision follows the parameters' precision.
                for state_name in self.state_names:
                    setattr(self, state_name, getattr(self, state_name).astype(params.dtype))

        scratch_fits = (
            len(self._scratch) == self.scratch_count
            and self._scratch[0].shape == params.shape
            and self._scratch[0].dtype == params.dtype
        )
        if not scratch_fits:
            self._scratch = [
                xp.empty(params.shape, dtype=params.dtype) for _ in range(self.scratch_count)
            ]


def _as_step_count(value: Any) -> int:
    if hasattr(value, "ndim") and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"step_count must be a non-negative integer, got {value!r}")
    return int(value)


# --- updates split across threads -------------------------------------------------------
#
# One Adam step over two million float32 parameters makes a dozen passes over 8 MB arrays.
# Two threads, each updating one contiguous piece, take 40 % less time than one (measured
# on 2 cores). Below about 131,072 entries per piece, handing work to another thread costs
# more than it saves.

MIN_ENTRIES_PER_THREAD = 131_072


def _run_in_pieces(update, params, gradient, state: tuple, work: tuple, threads: int) -> None:
    """Call ``update(params, gradient, state, work)`` on up to ``threads`` pieces at once.

    Falls back to one call on the whole arrays when they are small, or when ``params`` or
    ``gradient`` is not C-contiguous (a piece must be a view, not a copy).
    """
    pieces = min(threads, params.size // MIN_ENTRIES_PER_THREAD)
    contiguous = params.flags.c_contiguous and gradient.flags.c_contiguous
    if pieces < 2 or not contiguous:
        update(params, gradient, state, work)
        return

    flat = [array.reshape(-1) for array in (params, gradient, *state, *work)]

    def update_piece(start: int, stop: int) -> None:
        params_piece, gradient_piece, *rest = (array[start:stop] for array in flat)
        update(params_piece, gradient_piece, tuple(rest[:len(state)]),
               tuple(rest[len(state):]))

    bounds = parallel.piece_bounds(params.size, pieces, parallel.PIECE_ALIGNMENT)
    parallel.run_pieces(update_piece, bounds)


# --- the optimizers ------------------------------------------------------------------------


class SGD(Optimizer):
    r"""Plain gradient descent.

    .. math::

        w \leftarrow w - \eta\, g

    This is ``torch.optim.SGD(params, lr=η)`` with its defaults (no momentum, no weight
    decay).

    Parameters
    ----------
    learning_rate : float, default 0.01
        η, >= 0.
    """

    name = "sgd"

    def __init__(self, learning_rate: float = 0.01) -> None:
        super().__init__(learning_rate)

    def _update(self, params, gradient, state, work) -> None:
        (step,) = work
        xp.multiply(gradient, self.learning_rate, out=step)
        xp.subtract(params, step, out=params)


class Momentum(Optimizer):
    r"""Gradient descent with Polyak's heavy-ball momentum.

    .. math::

        u &\leftarrow \beta\, u + \eta\, g \\
        w &\leftarrow w - u

    with the velocity ``u`` (attribute ``velocity``) starting at 0. Source: B. T. Polyak,
    "Some methods of speeding up the convergence of iteration methods", USSR
    Computational Mathematics and Mathematical Physics 4(5), 1964.

    Compared with PyTorch: ``torch.optim.SGD(lr=η, momentum=β, dampening=0)`` keeps
    ``b ← β b + g`` and steps ``w ← w − η b``. With a constant η the two produce the same
    iterates (``u = η b``). When η changes between steps, the rule here applies the new
    η only to new gradients, while PyTorch rescales the whole accumulated buffer.

    Parameters
    ----------
    learning_rate : float, default 0.01
        η, >= 0.
    momentum : float, default 0.9
        β, in [0, 1). β = 0 is plain SGD.
    """

    name = "momentum"
    state_names = ("velocity",)
    hyperparameter_names = ("learning_rate", "momentum")

    def __init__(self, learning_rate: float = 0.01, *, momentum: float = 0.9) -> None:
        self.momentum = _check_decay("momentum", momentum, typical=0.9)
        super().__init__(learning_rate)

    def _update(self, params, gradient, state, work) -> None:
        (velocity,) = state
        (scaled_gradient,) = work

        xp.multiply(velocity, self.momentum, out=velocity)
        xp.multiply(gradient, self.learning_rate, out=scaled_gradient)
        xp.add(velocity, scaled_gradient, out=velocity)

        xp.subtract(params, velocity, out=params)


class NAG(Momentum):
    r"""Nesterov's accelerated gradient in the look-ahead form of Sutskever et al.

    .. math::

        g &= \nabla f(w - \beta\, u) \\
        u &\leftarrow \beta\, u + \eta\, g \\
        w &\leftarrow w - u

    The update is the momentum rule, but ``g`` is taken at the look-ahead point
    ``w − β u`` that :meth:`lookahead_point` returns, and the parameters kept after each
    step are ``w``, not the look-ahead point. On ``f(w) = ½ w²`` from ``w = 1`` with
    η = 0.1 and β = 0.9 the first iterates are 0.9, 0.729, 0.51759.
    Sources: Y. Nesterov, "A method for solving the convex programming problem with
    convergence rate O(1/k²)", Soviet Mathematics Doklady 27, 1983, and I. Sutskever,
    J. Martens, G. Dahl and G. Hinton, "On the importance of initialization and momentum
    in deep learning", ICML 2013.

    Compared with PyTorch: ``torch.optim.SGD(nesterov=True)`` uses a reparameterisation
    that takes the gradient at the stored parameters and stores the look-ahead point
    itself. With a constant η its parameters after each step equal ``w − β u`` here
    (0.81, 0.5751, 0.327321 on the example above), not ``w``.

    If the gradient is taken at ``w`` instead of the look-ahead point, this class runs
    plain momentum: callers must use :meth:`lookahead_point`, as :func:`trajectory` does.

    Parameters
    ----------
    learning_rate : float, default 0.01
        η, >= 0.
    momentum : float, default 0.9
        β, in [0, 1).
    """

    name = "nag"

    def lookahead_point(self, params):
        """Return a new array ``params − β·velocity`` (a copy of ``params`` before step 1).

        Parameters
        ----------
        params : ndarray, any shape
            The current parameters ``w``; not modified.

        Returns
        -------
        ndarray, params' shape and dtype
            The point where the next gradient must be taken.
        """
        self._check_params(params)
        if self.velocity is None:
            return params.copy()
        if self.velocity.shape != params.shape:
            raise ValueError(
                f"params have shape {params.shape} but the nag velocity has shape "
                f"{self.velocity.shape}; call reset() before optimizing other parameters"
            )
        point = xp.multiply(self.velocity, self.momentum, dtype=params.dtype)
        xp.subtract(params, point, out=point)
        return point


class RMSprop(Optimizer):
    r"""RMSprop: divide the gradient by a running root mean square of past gradients.

    .. math::

        v &\leftarrow \beta\, v + (1 - \beta)\, g^2 \\
        w &\leftarrow w - \eta\, \frac{g}{\sqrt{v} + \varepsilon}

    element-wise, with ``v`` (attribute ``second_moment``) starting at 0 and no bias
    correction. ε sits outside the square root. Source: T. Tieleman and G. Hinton,
    Lecture 6.5 "rmsprop", COURSERA: Neural Networks for Machine Learning, 2012.

    Compared with other libraries: ``torch.optim.RMSprop(lr=η, alpha=β, eps=ε)`` with its
    other defaults is the same rule, but its default decay is ``alpha=0.99``.
    TensorFlow's ``ApplyRMSProp`` kernel puts ε inside the root, ``g / √(v + ε)``, which
    is a much larger damping for the same ε.

    Parameters
    ----------
    learning_rate : float, default 0.001
        η, >= 0.
    beta : float, default 0.9
        β, the decay of the squared-gradient average, in [0, 1).
    epsilon : float, default 1e-8
        ε, > 0.
    """

    name = "rmsprop"
    state_names = ("second_moment",)
    hyperparameter_names = ("learning_rate", "beta", "epsilon")

    def __init__(
        self, learning_rate: float = 1e-3, *, beta: float = 0.9, epsilon: float = 1e-8
    ) -> None:
        self.beta = _check_decay("beta", beta, typical=0.9)
        self.epsilon = _check_epsilon(epsilon)
        super().__init__(learning_rate)

    def _update(self, params, gradient, state, scratch) -> None:
        (second_moment,) = state
        (work,) = scratch

        # v ← β v + (1 − β) g²
        xp.multiply(gradient, gradient, out=work)
        xp.multiply(work, 1.0 - self.beta, out=work)
        xp.multiply(second_moment, self.beta, out=second_moment)
        xp.add(second_moment, work, out=second_moment)

        # w ← w − η g / (√v + ε)
        xp.sqrt(second_moment, out=work)
        xp.add(work, self.epsilon, out=work)
        xp.divide(gradient, work, out=work)
        xp.multiply(work, self.learning_rate, out=work)
        xp.subtract(params, work, out=params)


class Adam(Optimizer):
    r"""Adam: bias-corrected running averages of the gradient and its square.

    .. math::

        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)\, g^2 \\
        \hat m &= m / (1 - \beta_1^t), \qquad \hat v = v / (1 - \beta_2^t) \\
        w &\leftarrow w - \eta\, \frac{\hat m}{\sqrt{\hat v} + \varepsilon}

    element-wise, with ``m`` and ``v`` (attributes ``first_moment`` and
    ``second_moment``) starting at 0 and t counted from 1. The stored ``m`` and ``v`` are
    the uncorrected averages; ``m̂`` and ``v̂`` exist only inside a step. ε is added to
    the square root of the bias-corrected ``v̂``. Source: D. P. Kingma and J. Ba, "Adam: A
    Method for Stochastic Optimization", ICLR 2015, Algorithm 1.

    Compared with other libraries: ``torch.optim.Adam(lr=η, betas=(β1, β2), eps=ε)``
    with its other defaults is the same rule. Forms that add ε inside the root, or add an
    "ε̂" to the uncorrected ``√v`` and fold the corrections into η, take visibly
    different steps while ``v`` is tiny: with g = 1e-8, η = 1 the first step here is
    −0.5, the ε-inside form gives about −1e-4, the ε̂ form about −0.0307.

    Parameters
    ----------
    learning_rate : float, default 0.001
        η, >= 0.
    beta1 : float, default 0.9
        β1, the decay of the first moment, in [0, 1).
    beta2 : float, default 0.999
        β2, the decay of the second moment, in [0, 1).
    epsilon : float, default 1e-8
        ε, > 0.
    """

    name = "adam"
    state_names = ("first_moment", "second_moment")
    hyperparameter_names = ("learning_rate", "beta1", "beta2", "epsilon")

    def __init__(
        self,
        learning_rate: float = 1e-3,
        *,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        self.beta1 = _check_decay("beta1", beta1, typical=0.9)
        self.beta2 = _check_decay("beta2", beta2, typical=0.999)
        self.epsilon = _check_epsilon(epsilon)
        super().__init__(learning_rate)

    def _update_moments(self, gradient, first_moment, second_moment, work) -> None:
        """Update the stored, uncorrected m and v; ``work`` is scratch space."""

        # m ← β1 m + (1 − β1) g
        xp.multiply(gradient, 1.0 - self.beta1, out=work)
        xp.multiply(first_moment, self.beta1, out=first_moment)
        xp.add(first_moment, work, out=first_moment)

        # v ← β2 v + (1 − β2) g²
        xp.multiply(gradient, gradient, out=work)
        xp.multiply(work, 1.0 - self.beta2, out=work)
        xp.multiply(second_moment, self.beta2, out=second_moment)
        xp.add(second_moment, work, out=second_moment)

    def _scaled_denominator(self, second_moment, out) -> float:
        """Write ``s (√v̂ + ε)`` into ``out`` and return ``s``, without touching v.

        With ``c = 1 − β2^t``, ``√v̂ + ε = (√v + ε √c) / √c``. Writing ``√v + ε √c``
        takes two passes over the array instead of three; the caller multiplies its
        scalar step size by ``s = √c`` instead.
        """
        root_correction = math.sqrt(1.0 - self.beta2**self.step_count)
        xp.sqrt(second_moment, out=out)
        xp.add(out, self.epsilon * root_correction, out=out)
        return root_correction

    def _update(self, params, gradient, state, scratch) -> None:
        first_moment, second_moment = state
        (work,) = scratch
        self._update_moments(gradient, first_moment, second_moment, work)

        # w ← w − η m̂ / (√v̂ + ε), with m̂ = m / (1 − β1^t) and the denominator's scale
        # folded into one scalar.
        scale = self._scaled_denominator(second_moment, out=work)
        xp.divide(first_moment, work, out=work)
        step_size = self.learning_rate * scale / (1.0 - self.beta1**self.step_count)
        xp.multiply(work, step_size, out=work)
        xp.subtract(params, work, out=params)


class Nadam(Adam):
    r"""Nadam: Adam with a Nesterov-style first moment, with constant momentum.

    .. math::

        m &\leftarrow \beta_1 m + (1 - \beta_1)\, g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2)\, g^2 \\
        \hat m &= m / (1 - \beta_1^{t+1}), \qquad \hat g = g / (1 - \beta_1^t),
            \qquad \hat v = v / (1 - \beta_2^t) \\
        w &\leftarrow w - \eta\,
            \frac{\beta_1 \hat m + (1 - \beta_1)\, \hat g}{\sqrt{\hat v} + \varepsilon}

    element-wise, with ``m`` and ``v`` (attributes ``first_moment`` and
    ``second_moment``) starting at 0, t counted from 1, and the stored ``m`` and ``v``
    never replaced by their corrected copies. Source: T. Dozat, "Incorporating Nesterov
    Momentum into Adam", ICLR 2016 workshop, Algorithm 2, with its momentum schedule
    ``μ_t`` held constant at β1.

    Compared with PyTorch: ``torch.optim.NAdam`` (checked against the 2.13 source) uses
    the schedule ``μ_t = β1 (1 − ½·0.96^(t·ψ))`` with ``momentum_decay`` ψ = 0.004, and
    the matching products of ``μ_i`` in the corrections. Its momentum therefore starts
    near β1/2 and approaches β1 only after thousands of steps, so its iterates differ
    from these. A huge ``momentum_decay`` such as 1e4 makes ``0.96^(t·ψ)`` underflow to
    0, so μ_t = β1 and PyTorch then follows this rule (it keeps the product of the μ_i
    in float32 unless the default dtype is float64).

    Parameters
    ----------
    learning_rate : float, default 0.001
        η, >= 0.
    beta1 : float, default 0.9
        β1 (Dozat's μ), the decay of the first moment, in [0, 1).
    beta2 : float, default 0.999
        β2 (Dozat's ν), the decay of the second moment, in [0, 1).
    epsilon : float, default 1e-8
        ε, > 0.
    """

    name = "nadam"
    scratch_count = 2

    def _update(self, params, gradient, state, scratch) -> None:
        first_moment, second_moment = state
        numerator, work = scratch
        self._update_moments(gradient, first_moment, second_moment, work)

        # β1 m̂ + (1 − β1) ĝ, with both corrections folded into scalar coefficients.
        t = self.step_count
        gradient_coefficient = (1.0 - self.beta1) / (1.0 - self.beta1**t)
        moment_coefficient = self.beta1 / (1.0 - self.beta1 ** (t + 1))
        xp.multiply(gradient, gradient_coefficient, out=numerator)
        xp.multiply(first_moment, moment_coefficient, out=work)
        xp.add(numerator, work, out=numerator)

        # w ← w − η (β1 m̂ + (1 − β1) ĝ) / (√v̂ + ε)
        scale = self._scaled_denominator(second_moment, out=work)
        xp.divide(numerator, work, out=numerator)
        xp.multiply(numerator, self.learning_rate * scale, out=numerator)
        xp.subtract(params, numerator, out=params)


# --- lookup by name --------------------------------------------------------------------

_OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, NAG, RMSprop, Adam, Nadam)
}


def names() -> list[str]:
    """Return the optimizer names :func:`get` accepts, in the order of this module."""
    return list(_OPTIMIZERS)


def _lookup(name: str) -> type[Optimizer]:
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a string, got {type(name).__name__}")
    try:
        return _OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; valid names are {', '.join(_OPTIMIZERS)}"
        ) from None


def hyperparameter_names(name: str) -> list[str]:
    """Return the keyword arguments ``get(name, ...)`` accepts, ``learning_rate`` first."""
    return list(_lookup(name).hyperparameter_names)


def get(name: str, **hyperparameters: float) -> Optimizer:
    """Build an optimizer by name (any letter case) with fresh state.

    Parameters
    ----------
    name : str
        One of :func:`names`: ``sgd``, ``momentum``, ``nag``, ``rmsprop``, ``adam``,
        ``nadam``.
    **hyperparameters : float
        ``learning_rate`` for all; ``momentum`` for momentum and nag; ``beta`` and
        ``epsilon`` for rmsprop; ``beta1``, ``beta2`` and ``epsilon`` for adam and nadam.
        Omitted ones take the class defaults.

    Raises
    ------
    ValueError
        For an unknown name or keyword (the message lists the valid ones), or an
        invalid value: a negative learning rate, a decay outside [0, 1), ε <= 0.
    """
    cls = _lookup(name)
    unknown = sorted(set(hyperparameters) - set(cls.hyperparameter_names))
    if unknown:
        raise ValueError(
            f"optimizer {cls.name!r} does not accept {', '.join(unknown)}; its "
            f"hyperparameters are {', '.join(cls.hyperparameter_names)}"
        )
    return cls(**hyperparameters)


# --- running an optimizer outside a network ---------------------------------------------


def trajectory(
    optimizer: Optimizer,
    gradient: Callable[[Any], Any],
    start,
    steps: int,
) -> list:
    """Run ``optimizer`` on a function given by its gradient and return the iterates.

    The run uses a deep copy of ``optimizer`` with its state reset, so ``optimizer``
    itself is unchanged, and two calls with the same arguments give the same path. For
    ``nag`` the gradient is taken at the look-ahead point, as in training.

    Parameters
    ----------
    optimizer : Optimizer
        Supplies the update rule and the hyperparameters.
    gradient : callable
        ``gradient(w) -> array`` of ``w``'s shape. It receives a copy, never the iterate.
    start : array_like
        The starting point; not modified. Integer input is converted to float64, and a
        floating dtype is kept.
    steps : int
        The number of steps, >= 0.

    Returns
    -------
    list of ndarray, ``steps`` arrays of start's shape
        The iterates after each step. The start itself is not in the list.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be a chainrule Optimizer such as optimizers.get('adam'), got "
            f"{type(optimizer).__name__}"
        )
    if not callable(gradient):
        raise TypeError(f"gradient must be callable as gradient(w), got {type(gradient).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")

    point = xp.asarray(start)
    dtype = point.dtype if xp.issubdtype(point.dtype, xp.floating) else xp.float64
    params = xp.array(point, dtype=dtype, copy=True)
    runner = copy.deepcopy(optimizer)
    runner.reset()

    path = []
    for _ in range(int(steps)):
        lookahead = runner.lookahead_point(params)
        evaluation_point = params.copy() if lookahead is None else lookahead
        runner.step(params, xp.asarray(gradient(evaluation_point)))
        path.append(params.copy())
    return path


def clip_gradient_norm(gradient, max_norm: float) -> float:
    """Scale ``gradient`` in place so its L2 norm is at most ``max_norm``; return the norm.

    Follows ``torch.nn.utils.clip_grad_norm_``: with ``n = ‖g‖₂`` the gradient is
    multiplied by ``max_norm / (n + 1e-6)`` when that factor is below 1, which is when
    ``n`` exceeds ``max_norm − 1e-6``, and left alone otherwise. The norm is taken over
    every element, so a flat buffer of all layers gives the global norm. Apply it after
    the L2 term is added to the gradient.

    Parameters
    ----------
    gradient : ndarray of a floating dtype, any shape
        Modified in place.
    max_norm : float
        The largest norm allowed, > 0.

    Returns
    -------
    float
        The norm before clipping. It is NaN or infinite when the gradient contains NaN or
        infinite values. In that case the gradient stays as it is for NaN, and ±inf
        entries become NaN as in PyTorch, so callers should check the returned norm.
    """
    if not isinstance(gradient, xp.ndarray) or not xp.issubdtype(gradient.dtype, xp.floating):
        raise TypeError(
            "gradient must be a floating-point NumPy array (it is scaled in place), got "
            f"{type(gradient).__name__}"
        )
    max_norm = _check_real("max_norm", max_norm)
    if max_norm <= 0.0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")

    flat = gradient.reshape(-1)
    with xp.errstate(over="ignore"):
        norm = math.sqrt(float(xp.dot(flat, flat)))
    if math.isinf(norm) and bool(xp.all(xp.isfinite(flat))):
        # The sum of squares overflowed the gradient's dtype (possible in float32),
        # although every element is finite; float64 has the range to hold it.
        wide = flat.astype(xp.float64)
        norm = math.sqrt(float(xp.dot(wide, wide)))

    scale = max_norm / (norm + CLIP_EPSILON)
    if scale < 1.0:
        xp.multiply(gradient, scale, out=gradient)
    return norm
