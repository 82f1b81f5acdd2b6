"""Learning-rate schedules: the learning rate as a function of the 0-based epoch index.

A training loop sets ``optimizer.learning_rate = schedule(epoch)`` before each epoch.
With η₀ the base ``learning_rate``, e the epoch index (0 for the first epoch) and T
``total_epochs``:

===========  =====================================================  ======================
name         η(e)                                                   parameters (default)
===========  =====================================================  ======================
constant     η₀                                                     none
step         η₀ · γ^⌊e / step_size⌋                                 ``step_size`` (10),
                                                                    ``gamma`` (0.1)
exponential  η₀ · γ^e                                               ``gamma`` (0.9)
cosine       η_min + (η₀ − η_min) · (1 + cos(π e / T)) / 2,         ``min_learning_rate``
             and η_min for e >= T                                   (0.0)
===========  =====================================================  ======================

``step``, ``exponential`` and ``cosine`` give the values of PyTorch's ``StepLR``,
``ExponentialLR`` and ``CosineAnnealingLR(T_max=total_epochs, eta_min=min_learning_rate)``
for the epochs 0 … T − 1. The first epoch gets η₀, and the last epoch (e = T − 1) of the
cosine schedule gets η_min + (η₀ − η_min)(1 − cos(π / T)) / 2. That value is slightly
above η_min, so no epoch of the run trains with the minimum alone. From e = T on, where
PyTorch's cosine would rise again, the cosine schedule stays at η_min.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "Schedule",
    "ConstantSchedule",
    "StepSchedule",
    "ExponentialSchedule",
    "CosineSchedule",
    "get",
    "names",
    "parameter_names",
]


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def _check_integer(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_gamma(value: Any) -> float:
    value = _check_real("gamma", value)
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"gamma must be in (0, 1], got {value!r}; it is the factor the learning rate is "
            "multiplied by at each decay, for example 0.1 or 0.9"
        )
    return value


class Schedule:
    """Base class: a learning rate for each 0-based epoch index.

    Parameters
    ----------
    learning_rate : float
        η₀, the learning rate of epoch 0, >= 0.
    total_epochs : int
        T, the number of epochs of the run, >= 1. Only ``cosine`` depends on it.
    """

    name: str = ""
    parameter_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float, total_epochs: int) -> None:
        self.learning_rate = _check_real("learning_rate", learning_rate)
        if self.learning_rate < 0.0:
            raise ValueError(f"learning_rate must be >= 0, got {self.learning_rate!r}")
        self.total_epochs = _check_integer("total_epochs", total_epochs, minimum=1)

    def __call__(self, epoch: int) -> float:
        """Return the learning rate of epoch ``epoch`` (0 for the first epoch)."""
        return self._rate(_check_integer("epoch", epoch, minimum=0))

    def _rate(self, epoch: int) -> float:
        raise NotImplementedError

    def config(self) -> dict:
        """Return the settings as a JSON-able dict; ``get(**config)`` rebuilds the schedule."""
        settings: dict = {
            "name": self.name,
            "learning_rate": self.learning_rate,
            "total_epochs": self.total_epochs,
        }
        for parameter in self.parameter_names:
            settings[parameter] = getattr(self, parameter)
        return settings

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}({settings})"


class ConstantSchedule(Schedule):
    """η(e) = η₀ for every epoch."""

    name = "constant"

    def _rate(self, epoch: int) -> float:
        return self.learning_rate


class StepSchedule(Schedule):
    """η(e) = η₀ · γ^⌊e / step_size⌋: multiply by γ every ``step_size`` epochs.

    Parameters
    ----------
    learning_rate, total_epochs
        As for :class:`Schedule`.
    step_size : int, default 10
        The number of epochs between decays, >= 1.
    gamma : float, default 0.1
        γ, the factor applied at each decay, in (0, 1].
    """

    name = "step"
    parameter_names = ("step_size", "gamma")

    def __init__(
        self,
        learning_rate: float,
        total_epochs: int,
        *,
        step_size: int = 10,
        gamma: float = 0.1,
    ) -> None:
        super().__init__(learning_rate, total_epochs)
        self.step_size = _check_integer("step_size", step_size, minimum=1)
        self.gamma = _check_gamma(gamma)

    def _rate(self, epoch: int) -> float:
        return self.learning_rate * self.gamma ** (epoch // self.step_size)


class ExponentialSchedule(Schedule):
    """η(e) = η₀ · γ^e: multiply by γ after every epoch.

    Parameters
    ----------
    learning_rate, total_epochs
        As for :class:`Schedule`.
    gamma : float, default 0.9
        γ, the factor applied after each epoch, in (0, 1].
    """

    name = "exponential"
    parameter_names = ("gamma",)

    def __init__(self, learning_rate: float, total_epochs: int, *, gamma: float = 0.9) -> None:
        super().__init__(learning_rate, total_epochs)
        self.gamma = _check_gamma(gamma)

    def _rate(self, epoch: int) -> float:
        return self.learning_rate * self.gamma**epoch


class CosineSchedule(Schedule):
    """η(e) = η_min + (η₀ − η_min)(1 + cos(π e / T)) / 2 for e < T, and η_min after.

    With T = ``total_epochs`` this is PyTorch's ``CosineAnnealingLR(T_max=T,
    eta_min=η_min)`` for the epochs of the run. Epoch 0 gets η₀, and the last epoch
    (e = T − 1) gets a little more than η_min.

    Parameters
    ----------
    learning_rate, total_epochs
        As for :class:`Schedule`.
    min_learning_rate : float, default 0.0
        η_min, the floor the rate anneals to, in [0, learning_rate].
    """

    name = "cosine"
    parameter_names = ("min_learning_rate",)

    def __init__(
        self, learning_rate: float, total_epochs: int, *, min_learning_rate: float = 0.0
    ) -> None:
        super().__init__(learning_rate, total_epochs)
        self.min_learning_rate = _check_real("min_learning_rate", min_learning_rate)
        if not 0.0 <= self.min_learning_rate <= self.learning_rate:
            raise ValueError(
                f"min_learning_rate must be in [0, learning_rate] = [0, {self.learning_rate!r}], "
                f"got {self.min_learning_rate!r}"
            )

    def _rate(self, epoch: int) -> float:
        if epoch >= self.total_epochs:
            return self.min_learning_rate
        cosine = math.cos(math.pi * epoch / self.total_epochs)
        return self.min_learning_rate + (self.learning_rate - self.min_learning_rate) * (
            1.0 + cosine
        ) / 2.0


_SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls
    for cls in (ConstantSchedule, StepSchedule, ExponentialSchedule, CosineSchedule)
}


def names() -> list[str]:
    """Return the schedule names :func:`get` accepts."""
    return list(_SCHEDULES)


def _lookup(name: str) -> type[Schedule]:
    if not isinstance(name, str):
        raise TypeError(f"schedule name must be a string, got {type(name).__name__}")
    try:
        return _SCHEDULES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown learning-rate schedule {name!r}; valid names are {', '.join(_SCHEDULES)}"
        ) from None


def parameter_names(name: str) -> list[str]:
    """Return the keyword parameters ``get(name, ...)`` accepts beyond the two required."""
    return list(_lookup(name).parameter_names)


def get(name: str, learning_rate: float, total_epochs: int, **parameters: Any) -> Schedule:
    """Build a schedule by name (any letter case).

    Parameters
    ----------
    name : str
        One of :func:`names`: ``constant``, ``step``, ``exponential``, ``cosine``.
    learning_rate : float
        η₀, the learning rate of epoch 0, >= 0.
    total_epochs : int
        T, the number of epochs of the run, >= 1.
    **parameters
        ``step_size`` and ``gamma`` for step, ``gamma`` for exponential,
        ``min_learning_rate`` for cosine; see the module table for defaults.

    Raises
    ------
    ValueError
        For an unknown name or parameter (the message lists the valid ones) or an
        invalid value.
    """
    cls = _lookup(name)
    unknown = sorted(set(parameters) - set(cls.parameter_names))
    if unknown:
        accepted = ", ".join(cls.parameter_names) or "no parameters"
        raise ValueError(
            f"schedule {cls.name!r} does not accept {', '.join(unknown)}; it takes {accepted}"
        )
    return cls(learning_rate, total_epochs, **parameters)
