"""The 2-D error surfaces and optimizer_paths."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import surfaces


@pytest.mark.parametrize("name", sorted(surfaces.SURFACES))
def test_surface_gradient_matches_central_differences(name):
    surface = surfaces.SURFACES[name]
    point = np.array([0.3, -0.7])
    step = 1e-6
    numeric = [
        (surface.function(*(point + step * e)) - surface.function(*(point - step * e))) / (2 * step)
        for e in np.eye(2)
    ]
    np.testing.assert_allclose(surface.gradient(point), numeric, rtol=1e-7, atol=1e-7)


def test_optimizer_paths_sgd_on_bowl_by_hand():
    # f = x²/2 + 5y², ∇f = (x, 10y); SGD with rate 0.1 from (-4, 1.5):
    # step 1: (-4 + 0.4, 1.5 - 1.5) = (-3.6, 0); step 2: (-3.24, 0).
    paths = surfaces.optimizer_paths("bowl", ["sgd"], steps=2, learning_rates={"sgd": 0.1})
    np.testing.assert_allclose(paths["sgd"], [[-4.0, 1.5], [-3.6, 0.0], [-3.24, 0.0]], atol=1e-15)


def test_optimizer_paths_every_optimizer_reaches_bowl_minimum():
    paths = surfaces.optimizer_paths("bowl")
    assert list(paths) == cr.optimizers.names()
    for name, points in paths.items():
        assert points.shape == (61, 2)
        assert np.linalg.norm(points[-1]) < 0.5, name


def test_optimizer_paths_unknown_surface():
    with pytest.raises(ValueError, match="unknown surface"):
        surfaces.optimizer_paths("volcano")
