"""Tests for chainrule.schedules against hand-computed values and PyTorch's schedulers."""

import json
import math

import pytest

from chainrule import schedules
from conftest import require


def rates(schedule, epochs):
    return [schedule(epoch) for epoch in range(epochs)]


# --- hand values ------------------------------------------------------------------------


def test_constant_keeps_rate():
    assert rates(schedules.get("constant", 0.05, total_epochs=4), 6) == [0.05] * 6


def test_step_halves_every_three_epochs():
    # 0.1 · 0.5^⌊e/3⌋
    schedule = schedules.get("step", 0.1, total_epochs=10, step_size=3, gamma=0.5)
    expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]
    assert rates(schedule, 8) == pytest.approx(expected, rel=1e-15)


def test_step_defaults_decay_tenfold_every_ten_epochs():
    schedule = schedules.get("step", 1.0, total_epochs=30)
    assert [schedule(9), schedule(10), schedule(20)] == pytest.approx([1.0, 0.1, 0.01])


def test_exponential_halves_each_epoch():
    schedule = schedules.get("exponential", 0.2, total_epochs=10, gamma=0.5)
    assert rates(schedule, 4) == pytest.approx([0.2, 0.1, 0.05, 0.025], rel=1e-15)


def test_cosine_over_four_epochs():
    # 0.1 + 0.9 (1 + cos(π e / 4)) / 2 with cos(π/4) = 0.70710678:
    # e=0: 1; e=1: 0.1 + 0.9·0.85355339 = 0.86819805; e=2: 0.1 + 0.45 = 0.55;
    # e=3: 0.1 + 0.9·0.14644661 = 0.23180195.
    schedule = schedules.get("cosine", 1.0, total_epochs=4, min_learning_rate=0.1)
    expected = [1.0, 0.8681980515339464, 0.55, 0.2318019484660536]
    assert rates(schedule, 4) == pytest.approx(expected, rel=1e-14)


def test_cosine_last_epoch_stays_above_minimum():
    # e = T − 1 = 9: (1 − cos(π/10)) / 2 = 0.02447174.
    schedule = schedules.get("cosine", 1.0, total_epochs=10)
    assert schedule(9) == pytest.approx(0.024471741852423234, rel=1e-13)


def test_cosine_holds_minimum_after_last_epoch():
    schedule = schedules.get("cosine", 1.0, total_epochs=10, min_learning_rate=0.01)
    assert [schedule(10), schedule(15)] == [0.01, 0.01]


# --- PyTorch as an oracle ---------------------------------------------------------------------


def torch_rates(torch, make_scheduler, learning_rate, epochs):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=learning_rate)
    scheduler = make_scheduler(torch, optimizer)
    values = []
    for _ in range(epochs):
        values.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return values


TORCH_CASES = {
    "step": (
        dict(step_size=7, gamma=0.3),
        lambda torch, optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 7, gamma=0.3),
    ),
    "exponential": (
        dict(gamma=0.95),
        lambda torch, optimizer: torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.95),
    ),
    "cosine": (
        dict(min_learning_rate=1e-4),
        lambda torch, optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=30, eta_min=1e-4
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_matches_torch_scheduler(name):
    torch = require("torch")
    parameters, make_scheduler = TORCH_CASES[name]
    expected = torch_rates(torch, make_scheduler, 0.1, 30)
    schedule = schedules.get(name, 0.1, total_epochs=30, **parameters)
    # PyTorch updates the rate recursively, so it drifts from the closed form by rounding.
    assert rates(schedule, 30) == pytest.approx(expected, rel=1e-9, abs=1e-15)


# --- construction and validation -------------------------------------------------------------


def test_names_lists_every_schedule():
    assert schedules.names() == ["constant", "step", "exponential", "cosine"]


def test_get_ignores_letter_case():
    assert schedules.get("Cosine", 0.1, total_epochs=5).name == "cosine"


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="'linear'.*constant, step, exponential, cosine"):
        schedules.get("linear", 0.1, total_epochs=5)


def test_get_unknown_parameter_names_it():
    with pytest.raises(ValueError, match="'cosine' does not accept gamma.*min_learning_rate"):
        schedules.get("cosine", 0.1, total_epochs=5, gamma=0.5)


def test_constant_rejects_any_parameter():
    with pytest.raises(ValueError, match="does not accept step_size; it takes no parameters"):
        schedules.get("constant", 0.1, total_epochs=5, step_size=2)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("constant", []),
        ("step", ["step_size", "gamma"]),
        ("exponential", ["gamma"]),
        ("cosine", ["min_learning_rate"]),
    ],
)
def test_parameter_names_per_schedule(name, expected):
    assert schedules.parameter_names(name) == expected


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("constant", dict(learning_rate=-0.1, total_epochs=5), "must be >= 0, got -0.1"),
        ("cosine", dict(learning_rate=0.1, total_epochs=0), "total_epochs must .* got 0"),
        ("step", dict(learning_rate=0.1, total_epochs=5, step_size=0), "step_size .* got 0"),
        ("step", dict(learning_rate=0.1, total_epochs=5, gamma=0.0), r"\(0, 1\], got 0.0"),
        ("exponential", dict(learning_rate=0.1, total_epochs=5, gamma=1.5), "gamma .* got 1.5"),
        (
            "cosine",
            dict(learning_rate=0.1, total_epochs=5, min_learning_rate=0.2),
            "min_learning_rate must be in .* got 0.2",
        ),
    ],
)
def test_invalid_parameter_names_value(name, arguments, message):
    with pytest.raises(ValueError, match=message):
        schedules.get(name, **arguments)


def test_negative_epoch_raises():
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, got -1"):
        schedules.get("constant", 0.1, total_epochs=5)(-1)


def test_fractional_epoch_raises_type_error():
    with pytest.raises(TypeError, match="epoch must be an integer"):
        schedules.get("constant", 0.1, total_epochs=5)(1.5)


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("constant", {}),
        ("step", dict(step_size=4, gamma=0.5)),
        ("exponential", dict(gamma=0.8)),
        ("cosine", dict(min_learning_rate=0.001)),
    ],
)
def test_config_survives_json_and_rebuilds(name, parameters):
    schedule = schedules.get(name, 0.1, total_epochs=12, **parameters)
    rebuilt = schedules.get(**json.loads(json.dumps(schedule.config())))
    assert rates(rebuilt, 15) == rates(schedule, 15)


def test_config_of_cosine():
    schedule = schedules.get("cosine", 0.1, total_epochs=12)
    assert schedule.config() == {
        "name": "cosine",
        "learning_rate": 0.1,
        "total_epochs": 12,
        "min_learning_rate": 0.0,
    }


def test_cosine_rates_are_finite_floats():
    values = rates(schedules.get("cosine", 0.1, total_epochs=3), 5)
    assert all(isinstance(value, float) and math.isfinite(value) for value in values)
