"""2-D error surfaces for drawing optimizers' paths: a quadratic bowl, Rosenbrock, a saddle.

:func:`optimizer_paths` runs each optimizer from a surface's start point with
:func:`chainrule.optimizers.trajectory`. Figures are in :mod:`chainrule.diagnostic_plots`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from chainrule import optimizers as optimizer_registry
from chainrule.backend import xp

__all__ = [
    "SURFACES",
    "Surface",
    "optimizer_paths",
]


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
