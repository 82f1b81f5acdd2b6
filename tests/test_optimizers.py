"""Tests for chainrule.optimizers.

Expected numbers are literals worked out outside chainrule. The first step of each rule
was done by hand, as the comments show. The later steps come from a standalone float64
script in plain Python floats that applies the rule written above each table, one
element at a time. PyTorch's optimizers are a second, independent oracle for
sgd, momentum, rmsprop and adam.
"""

import json
import math

import numpy as np
import pytest

from chainrule import optimizers
from conftest import require

# Five steps of fixed, varying gradients for the two-element parameter vector W0.
W0 = [0.5, -1.0]
GRADIENTS = [[1.0, -2.0], [-0.5, 0.25], [2.0, 1.0], [0.0, -3.0], [-1.5, 0.5]]

ALL_NAMES = ["sgd", "momentum", "nag", "rmsprop", "adam", "nadam"]


def run_steps(optimizer, gradients=GRADIENTS, start=W0):
    """Feed ``gradients`` to ``optimizer.step`` and return the iterates after each step."""
    params = np.array(start, dtype=np.float64)
    path = []
    for gradient in gradients:
        optimizer.step(params, np.array(gradient, dtype=np.float64))
        path.append(params.copy())
    return np.array(path)


def half_square_gradient(w):
    """Gradient of f(w) = ½‖w‖²."""
    return w


# --- each rule against literal numbers ------------------------------------------------


def test_sgd_five_steps():
    # w ← w − 0.1 g. Step 1: 0.5 − 0.1·1 = 0.4 and −1 − 0.1·(−2) = −0.8.
    expected = [
        [0.4, -0.8],
        [0.45, -0.825],
        [0.25, -0.925],
        [0.25, -0.625],
        [0.4, -0.675],
    ]
    path = run_steps(optimizers.get("sgd", learning_rate=0.1))
    np.testing.assert_allclose(path, expected, rtol=0, atol=1e-15)


def test_momentum_five_steps():
    # u ← 0.8 u + 0.1 g, w ← w − u, u from 0.
    # Step 1: u = (0.1, −0.2), w = (0.4, −0.8).
    # Step 2: u = 0.8·(0.1, −0.2) + 0.1·(−0.5, 0.25) = (0.03, −0.135),
    # w = (0.37, −0.665).
    expected = [
        [0.4, -0.8],
        [0.37, -0.665],
        [0.14599999999999996, -0.657],
        [-0.03320000000000006, -0.35059999999999997],
        [-0.026560000000000056, -0.1554799999999999],
    ]
    optimizer = optimizers.get("momentum", learning_rate=0.1, momentum=0.8)
    path = run_steps(optimizer)
    np.testing.assert_allclose(path, expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(
        optimizer.state_dict()["velocity"],
        [-0.006640000000000007, -0.19512000000000007],
        rtol=1e-12,
    )


def test_rmsprop_five_steps_epsilon_outside_root():
    # v ← 0.5 v + 0.5 g², w ← w − 0.1 g / (√v + 0.1). The large ε = 0.1 makes its
    # placement visible. Step 1, first element: v = 0.5, √v = 0.70710678,
    # w = 0.5 − 0.1 / 0.80710678 = 0.37610066. With ε inside the root it would be
    # 0.5 − 0.1 / √0.6 = 0.37090.
    expected = [
        [0.3761006569007046, -0.8679182349373774],
        [0.4462886617905395, -0.8903296131645376],
        [0.3196278171728675, -0.9806000637338173],
        [0.3196278171728675, -0.8522750681234765],
        [0.42730830343975656, -0.8813213583712489],
    ]
    optimizer = optimizers.get("rmsprop", learning_rate=0.1, beta=0.5, epsilon=0.1)
    path = run_steps(optimizer)
    np.testing.assert_allclose(path, expected, rtol=1e-13)
    np.testing.assert_allclose(
        optimizer.state_dict()["second_moment"], [1.671875, 2.62890625], rtol=1e-14
    )


def test_adam_five_steps():
    # m ← 0.8 m + 0.2 g, v ← 0.9 v + 0.1 g², m̂ = m / (1 − 0.8^t), v̂ = v / (1 − 0.9^t),
    # w ← w − 0.1 m̂ / (√v̂ + 0.1). Step 1, first element: m = 0.2, v = 0.1, m̂ = v̂ = 1,
    # w = 0.5 − 0.1 / 1.1 = 0.40909090909.
    expected = [
        [0.40909090909090906, -0.9047619047619048],
        [0.39010808342174536, -0.8543719443794823],
        [0.32736065316651625, -0.8519595470565642],
        [0.2787153306520269, -0.8009367064921723],
        [0.280185973744967, -0.768683880913832],
    ]
    optimizer = optimizers.get("adam", learning_rate=0.1, beta1=0.8, beta2=0.9, epsilon=0.1)
    path = run_steps(optimizer)
    np.testing.assert_allclose(path, expected, rtol=1e-13)


def test_adam_stores_uncorrected_moments():
    # The raw averages after the five steps of test_adam_five_steps. The corrected
    # copies would be m / (1 − 0.8⁵) and v / (1 − 0.9⁵), about 1.49 and 2.44 times larger.
    optimizer = optimizers.get("adam", learning_rate=0.1, beta1=0.8, beta2=0.9, epsilon=0.1)
    run_steps(optimizer)
    state = optimizer.state_dict()
    np.testing.assert_allclose(state["first_moment"], [-0.01328, -0.39024], rtol=1e-12)
    np.testing.assert_allclose(
        state["second_moment"], [0.632835, 1.18299625], rtol=1e-12
    )
    assert state["step_count"] == 5


def test_nadam_five_steps():
    # m, v as for Adam; m̂ = m / (1 − 0.8^(t+1)), ĝ = g / (1 − 0.8^t),
    # v̂ = v / (1 − 0.9^t), w ← w − 0.1 (0.8 m̂ + 0.2 ĝ) / (√v̂ + 0.1).
    # Step 1, first element: m = 0.2, m̂ = 0.2 / 0.36 = 0.5556, ĝ = 1 / 0.2 = 5, v̂ = 1,
    # numerator 0.8·0.5556 + 0.2·5 = 1.4444, w = 0.5 − 0.1·1.4444 / 1.1 = 0.36868687.
    expected = [
        [0.3686868686868687, -0.8624338624338624],
        [0.3891219323853673, -0.8420269993038833],
        [0.29160591538883096, -0.8705867762826572],
        [0.257431476535244, -0.7847849879219668],
        [0.2917258526110841, -0.7695393405009111],
    ]
    optimizer = optimizers.get("nadam", learning_rate=0.1, beta1=0.8, beta2=0.9, epsilon=0.1)
    path = run_steps(optimizer)
    np.testing.assert_allclose(path, expected, rtol=1e-13)
    np.testing.assert_allclose(optimizer.state_dict()["first_moment"], [-0.01328, -0.39024])


def test_nag_five_steps_anisotropic_quadratic():
    # f(w) = ½(w₁² + 4 w₂²) from (1, 1), η = 0.1, β = 0.9. Each step: look = w − 0.9 u,
    # g = (look₁, 4 look₂), u ← 0.9 u + 0.1 g, w ← w − u.
    # Step 1: g = (1, 4), u = (0.1, 0.4), w = (0.9, 0.6).
    # Step 2: look = (0.81, 0.24), g = (0.81, 0.96), u = (0.171, 0.456), w = (0.729, 0.144).
    expected = [
        [0.9, 0.6],
        [0.729, 0.144],
        [0.51759, -0.15984],
        [0.2945889, -0.2599776],
        [0.084499119, -0.210060864],
    ]
    optimizer = optimizers.get("nag", learning_rate=0.1, momentum=0.9)
    path = optimizers.trajectory(
        optimizer, lambda w: np.array([w[0], 4.0 * w[1]]), np.array([1.0, 1.0]), steps=5
    )
    np.testing.assert_allclose(path, expected, rtol=1e-12, atol=1e-15)


# --- public bug cases ---------------------------------------------------------------------

# Nesterov momentum on f(w) = ½w², w0 = 1, η = 0.1, β = 0.9, three steps.
NAG_LOOKAHEAD_FORM = [0.9, 0.729, 0.51759]
NAG_REPARAMETERISED = [0.81, 0.5751, 0.327321]
NAG_DOUBLE_COUNTED = [0.9, 0.639, 0.28269]
NAG_PLAIN_MOMENTUM = [0.9, 0.72, 0.486]


def nag_half_square_path(steps=3):
    optimizer = optimizers.get("nag", learning_rate=0.1, momentum=0.9)
    path = optimizers.trajectory(optimizer, half_square_gradient, np.array([1.0]), steps)
    return np.array(path)[:, 0]


def test_nag_bug_case_lookahead_form():
    # The documented form keeps w, with the gradient taken at w − βu:
    # look 1 → u 0.1, w 0.9; look 0.81 → u 0.171, w 0.729; look 0.5751 → u 0.21141,
    # w 0.51759. Steps 4 and 5 continue the same arithmetic.
    path = nag_half_square_path(steps=5)
    np.testing.assert_allclose(
        path, NAG_LOOKAHEAD_FORM + [0.2945889, 0.084499119], rtol=1e-12
    )


@pytest.mark.parametrize(
    "rejected",
    [NAG_REPARAMETERISED, NAG_DOUBLE_COUNTED, NAG_PLAIN_MOMENTUM],
    ids=["reparameterised", "double_counted", "plain_momentum"],
)
def test_nag_bug_case_rejects_other_forms(rejected):
    path = nag_half_square_path()
    assert not np.allclose(path, rejected, rtol=0, atol=1e-3)


def test_nag_lookahead_points_are_reparameterised_values():
    # The reparameterised sequence is the look-ahead point w − βu after each step.
    optimizer = optimizers.get("nag", learning_rate=0.1, momentum=0.9)
    params = np.array([1.0])
    lookaheads = []
    for _ in range(3):
        point = optimizer.lookahead_point(params)
        optimizer.step(params, half_square_gradient(point))
        lookaheads.append(optimizer.lookahead_point(params)[0])
    np.testing.assert_allclose(lookaheads, NAG_REPARAMETERISED, rtol=1e-12)


ADAM_BUG_CASE_SETTINGS = dict(learning_rate=0.1, beta1=0.9, beta2=0.999, epsilon=1e-8)


def adam_scalar_path(gradients, **settings):
    optimizer = optimizers.get("adam", **settings)
    return run_steps(optimizer, [[g] for g in gradients], start=[0.0])[:, 0]


def test_adam_bug_case_constant_gradient():
    # With g = 1 every step, m̂ = v̂ = 1 exactly, so each step is −0.1 / (1 + 1e-8).
    path = adam_scalar_path([1.0, 1.0, 1.0], **ADAM_BUG_CASE_SETTINGS)
    np.testing.assert_allclose(path, [-0.099999999, -0.199999998, -0.299999997], rtol=1e-12)


def test_adam_bug_case_varying_gradient():
    path = adam_scalar_path([1.0, -2.0, 3.0], **ADAM_BUG_CASE_SETTINGS)
    np.testing.assert_allclose(
        path, [-0.0999999990, -0.0633896465, -0.0977137544], rtol=0, atol=1e-10
    )


@pytest.mark.parametrize(
    "rejected",
    [
        [-0.3162276660, -0.7411867398, -1.2362101841],
        [-0.099999999, -0.2343838866, -0.3909240723],
    ],
    ids=["no_bias_correction", "correction_without_power_t"],
)
def test_adam_bug_case_rejects_wrong_correction(rejected):
    path = adam_scalar_path([1.0, 1.0, 1.0], **ADAM_BUG_CASE_SETTINGS)
    assert not np.allclose(path, rejected, rtol=0, atol=1e-4)


def adam_tiny_gradient_step():
    settings = dict(learning_rate=1.0, beta1=0.9, beta2=0.999, epsilon=1e-8)
    return adam_scalar_path([1e-8], **settings)[0]


def test_adam_epsilon_bug_case_paper_form():
    # m̂ = 1e-8, v̂ = 1e-16, so the step is 1e-8 / (1e-8 + 1e-8) = 0.5.
    assert adam_tiny_gradient_step() == pytest.approx(-0.5, rel=1e-12)


@pytest.mark.parametrize(
    "rejected", [-9.99999995e-05, -0.0306534300], ids=["epsilon_inside_root", "epsilon_hat"]
)
def test_adam_epsilon_bug_case_rejects_other_forms(rejected):
    assert adam_tiny_gradient_step() != pytest.approx(rejected, rel=1e-3)


# --- PyTorch as an oracle ------------------------------------------------------------------

TORCH_STEPS = 30


def rosenbrock_value(x, y):
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def rosenbrock_gradient(w):
    x, y = w
    return np.array([-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)])


def torch_path(torch, make_optimizer, start, steps=TORCH_STEPS):
    """Run a torch.optim optimizer on Rosenbrock with autograd gradients, in float64."""
    params = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([params])
    path = []
    for _ in range(steps):
        optimizer.zero_grad()
        rosenbrock_value(params[0], params[1]).backward()
        optimizer.step()
        path.append(params.detach().numpy().copy())
    return np.array(path)


TORCH_CASES = {
    "sgd": (dict(learning_rate=1e-3), lambda torch, p: torch.optim.SGD(p, lr=1e-3)),
    "momentum": (
        dict(learning_rate=5e-4, momentum=0.85),
        lambda torch, p: torch.optim.SGD(p, lr=5e-4, momentum=0.85, dampening=0.0),
    ),
    "rmsprop": (
        dict(learning_rate=1e-2, beta=0.8, epsilon=1e-2),
        lambda torch, p: torch.optim.RMSprop(p, lr=1e-2, alpha=0.8, eps=1e-2),
    ),
    "adam": (
        dict(learning_rate=2e-2, beta1=0.85, beta2=0.99, epsilon=1e-3),
        lambda torch, p: torch.optim.Adam(p, lr=2e-2, betas=(0.85, 0.99), eps=1e-3),
    ),
}


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_matches_torch_on_rosenbrock(name):
    torch = require("torch")
    settings, make_torch_optimizer = TORCH_CASES[name]
    start = [-1.2, 1.0]
    expected = torch_path(torch, lambda p: make_torch_optimizer(torch, p), start)
    path = optimizers.trajectory(
        optimizers.get(name, **settings), rosenbrock_gradient, np.array(start), TORCH_STEPS
    )
    np.testing.assert_allclose(path, expected, rtol=1e-10, atol=1e-12)


def test_nadam_matches_torch_with_constant_momentum():
    # torch.optim.NAdam uses μ_t = β1 (1 − ½·0.96^(t·ψ)). With ψ = momentum_decay = 1e4
    # the power underflows to 0, so μ_t = β1 as in the rule here. PyTorch keeps the
    # product of the μ_i in the default dtype, so float64 is set for the run.
    torch = require("torch")
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        expected = torch_path(
            torch,
            lambda p: torch.optim.NAdam(
                p, lr=2e-2, betas=(0.85, 0.99), eps=1e-3, momentum_decay=1e4
            ),
            [-1.2, 1.0],
        )
    finally:
        torch.set_default_dtype(previous_dtype)
    optimizer = optimizers.get("nadam", learning_rate=2e-2, beta1=0.85, beta2=0.99, epsilon=1e-3)
    path = optimizers.trajectory(optimizer, rosenbrock_gradient, [-1.2, 1.0], TORCH_STEPS)
    np.testing.assert_allclose(path, expected, rtol=1e-10, atol=1e-12)


def test_nag_lookahead_matches_torch_nesterov():
    # torch.optim.SGD(nesterov=True) stores the look-ahead point, so its parameters
    # after each step equal w − βu here, not w.
    torch = require("torch")
    start = [-1.2, 1.0]
    expected = torch_path(
        torch, lambda p: torch.optim.SGD(p, lr=2e-4, momentum=0.9, nesterov=True), start
    )
    optimizer = optimizers.get("nag", learning_rate=2e-4, momentum=0.9)
    params = np.array(start)
    lookaheads = []
    for _ in range(TORCH_STEPS):
        point = optimizer.lookahead_point(params)
        optimizer.step(params, rosenbrock_gradient(point))
        lookaheads.append(optimizer.lookahead_point(params))
    np.testing.assert_allclose(lookaheads, expected, rtol=1e-10, atol=1e-12)


def test_momentum_new_learning_rate_scales_new_gradients_only():
    # u ← β u + η g: with β = 0.5 and g = 1, step 1 at η = 0.1 gives u = 0.1, w = −0.1.
    # Step 2 at η = 1 gives u = 0.05 + 1 = 1.05, w = −1.15. PyTorch's b-buffer form would
    # rescale the whole buffer: b = 1.5, w = −0.1 − 1.5 = −1.6.
    optimizer = optimizers.get("momentum", learning_rate=0.1, momentum=0.5)
    params = np.array([0.0])
    optimizer.step(params, np.array([1.0]))
    optimizer.learning_rate = 1.0
    optimizer.step(params, np.array([1.0]))
    assert params[0] == pytest.approx(-1.15, rel=1e-14)


# --- convergence --------------------------------------------------------------------------

QUADRATIC_MATRIX = np.array([[3.0, 1.0], [1.0, 2.0]])
QUADRATIC_MINIMUM = np.array([1.0, -2.0])


def quadratic_gradient(w):
    """Gradient of f(w) = ½ (w − c)ᵀ A (w − c), where A has eigenvalues 1.38 and 3.62."""
    return QUADRATIC_MATRIX @ (w - QUADRATIC_MINIMUM)


# name: (hyperparameters, steps). RMSprop with a constant rate ends in an oscillation
# of radius about 0.7 η around the minimum, so it needs a small η and many steps.
QUADRATIC_SETTINGS = {
    "sgd": (dict(learning_rate=0.1), 200),
    "momentum": (dict(learning_rate=0.05, momentum=0.9), 500),
    "nag": (dict(learning_rate=0.05, momentum=0.9), 500),
    "rmsprop": (dict(learning_rate=1e-3, beta=0.9), 8000),
    "adam": (dict(learning_rate=0.05), 1000),
    "nadam": (dict(learning_rate=0.05), 1000),
}

# Rosenbrock from (−1.2, 1): the banana valley needs small steps for the momentum methods.
ROSENBROCK_SETTINGS = {
    "sgd": (dict(learning_rate=1e-3), 20000),
    "momentum": (dict(learning_rate=2e-4, momentum=0.9), 10000),
    "nag": (dict(learning_rate=2e-4, momentum=0.9), 10000),
    "rmsprop": (dict(learning_rate=1e-3, beta=0.9), 10000),
    "adam": (dict(learning_rate=2e-2), 5000),
    "nadam": (dict(learning_rate=2e-2), 5000),
}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_converges_on_convex_quadratic(name):
    settings, steps = QUADRATIC_SETTINGS[name]
    path = optimizers.trajectory(
        optimizers.get(name, **settings), quadratic_gradient, np.array([-2.0, 3.0]), steps
    )
    assert np.linalg.norm(path[-1] - QUADRATIC_MINIMUM) < 1e-3


@pytest.mark.parametrize("name", ALL_NAMES)
def test_converges_near_rosenbrock_minimum(name):
    settings, steps = ROSENBROCK_SETTINGS[name]
    path = optimizers.trajectory(
        optimizers.get(name, **settings), rosenbrock_gradient, np.array([-1.2, 1.0]), steps
    )
    assert np.linalg.norm(path[-1] - np.array([1.0, 1.0])) < 1e-2


# --- construction and validation ------------------------------------------------------------


def test_names_lists_every_optimizer():
    assert optimizers.names() == ALL_NAMES


def test_get_ignores_letter_case():
    assert optimizers.get("NAdam").name == "nadam"


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="'adagrad'.*sgd, momentum, nag, rmsprop, adam, nadam"):
        optimizers.get("adagrad")


def test_get_unknown_keyword_names_it():
    with pytest.raises(ValueError, match="'sgd' does not accept momentum.*learning_rate"):
        optimizers.get("sgd", momentum=0.9)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sgd", ["learning_rate"]),
        ("momentum", ["learning_rate", "momentum"]),
        ("nag", ["learning_rate", "momentum"]),
        ("rmsprop", ["learning_rate", "beta", "epsilon"]),
        ("adam", ["learning_rate", "beta1", "beta2", "epsilon"]),
        ("nadam", ["learning_rate", "beta1", "beta2", "epsilon"]),
    ],
)
def test_hyperparameter_names_per_optimizer(name, expected):
    assert optimizers.hyperparameter_names(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sgd", {"name": "sgd", "learning_rate": 0.01}),
        ("momentum", {"name": "momentum", "learning_rate": 0.01, "momentum": 0.9}),
        ("nag", {"name": "nag", "learning_rate": 0.01, "momentum": 0.9}),
        ("rmsprop", {"name": "rmsprop", "learning_rate": 1e-3, "beta": 0.9, "epsilon": 1e-8}),
        (
            "adam",
            {"name": "adam", "learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
        ),
        (
            "nadam",
            {
                "name": "nadam",
                "learning_rate": 1e-3,
                "beta1": 0.9,
                "beta2": 0.999,
                "epsilon": 1e-8,
            },
        ),
    ],
)
def test_config_holds_defaults(name, expected):
    assert optimizers.get(name).config() == expected


@pytest.mark.parametrize("name", ALL_NAMES)
def test_config_survives_json_and_rebuilds(name):
    config = optimizers.get(name, learning_rate=0.25).config()
    rebuilt = optimizers.get(**json.loads(json.dumps(config)))
    assert rebuilt.config() == config


@pytest.mark.parametrize(
    ("name", "keyword", "value"),
    [
        ("sgd", "learning_rate", -0.1),
        ("adam", "learning_rate", float("nan")),
        ("momentum", "momentum", -0.5),
        ("nag", "momentum", 1.0),
        ("rmsprop", "beta", 1.5),
        ("adam", "beta1", 1.0),
        ("nadam", "beta2", -0.001),
        ("rmsprop", "epsilon", 0.0),
        ("adam", "epsilon", -1e-8),
        ("nadam", "epsilon", 0.0),
    ],
)
def test_invalid_hyperparameter_names_value(name, keyword, value):
    with pytest.raises(ValueError, match=f"{keyword} must .*got {value!r}"):
        optimizers.get(name, **{keyword: value})


def test_hyperparameter_of_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match="momentum must be a real number"):
        optimizers.get("momentum", momentum="0.9")


def test_learning_rate_setter_rejects_negative():
    optimizer = optimizers.get("adam")
    with pytest.raises(ValueError, match="got -0.001"):
        optimizer.learning_rate = -0.001


def test_learning_rate_setter_accepts_zero():
    optimizer = optimizers.get("sgd")
    optimizer.learning_rate = 0
    params = np.array([1.0])
    optimizer.step(params, np.array([5.0]))
    assert params[0] == 1.0


# --- the step interface ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "momentum", "rmsprop", "adam", "nadam"])
def test_lookahead_point_is_none_except_nag(name):
    assert optimizers.get(name).lookahead_point(np.ones(3)) is None


def test_nag_lookahead_point_leaves_params_alone():
    optimizer = optimizers.get("nag", learning_rate=0.1, momentum=0.5)
    params = np.array([1.0, 2.0])
    optimizer.step(params, np.array([1.0, -1.0]))
    # u = (0.1, −0.1), w = (0.9, 2.1), look-ahead = w − 0.5 u = (0.85, 2.15).
    point = optimizer.lookahead_point(params)
    np.testing.assert_allclose(point, [0.85, 2.15], rtol=1e-14)
    np.testing.assert_array_equal(params, [0.9, 2.1])
    assert not np.shares_memory(point, params)


def test_nag_lookahead_before_first_step_is_a_copy():
    params = np.array([1.0, 2.0])
    point = optimizers.get("nag").lookahead_point(params)
    np.testing.assert_array_equal(point, params)
    assert point is not params


def test_step_rejects_gradient_of_other_shape():
    with pytest.raises(ValueError, match=r"gradient has shape \(2,\).*\(3,\)"):
        optimizers.get("adam").step(np.zeros(3), np.zeros(2))


def test_step_rejects_integer_params():
    with pytest.raises(TypeError, match="floating-point dtype"):
        optimizers.get("sgd").step(np.zeros(3, dtype=np.int64), np.zeros(3))


def test_step_rejects_params_of_other_shape_than_state():
    optimizer = optimizers.get("momentum")
    optimizer.step(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"call reset\(\)"):
        optimizer.step(np.zeros(4), np.ones(4))


def test_step_works_on_two_dimensional_params():
    # Plain SGD on a 2×2 array: w − 0.5 g element by element.
    params = np.array([[1.0, 2.0], [3.0, 4.0]])
    optimizers.get("sgd", learning_rate=0.5).step(params, np.array([[2.0, 2.0], [0.0, -2.0]]))
    np.testing.assert_array_equal(params, [[0.0, 1.0], [3.0, 5.0]])


def test_step_count_counts_steps():
    optimizer = optimizers.get("rmsprop")
    run_steps(optimizer)
    assert optimizer.step_count == 5


@pytest.mark.parametrize("name", ALL_NAMES)
def test_reset_restarts_from_scratch(name):
    optimizer = optimizers.get(name, learning_rate=0.1)
    first = run_steps(optimizer)
    optimizer.reset()
    second = run_steps(optimizer)
    np.testing.assert_array_equal(second, first)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_float32_params_stay_float32(name):
    optimizer = optimizers.get(name, learning_rate=0.1)
    params = np.array(W0, dtype=np.float32)
    for gradient in GRADIENTS:
        # A float64 gradient must not promote the float32 parameters or state.
        optimizer.step(params, np.array(gradient, dtype=np.float64))
    assert params.dtype == np.float32
    for key, value in optimizer.state_dict().items():
        if key != "step_count":
            assert value.dtype == np.float32, key


@pytest.mark.parametrize("name", ALL_NAMES)
def test_float32_run_tracks_float64_run(name):
    optimizer32 = optimizers.get(name, learning_rate=0.1)
    params = np.array(W0, dtype=np.float32)
    for gradient in GRADIENTS:
        optimizer32.step(params, np.array(gradient, dtype=np.float32))
    expected = run_steps(optimizers.get(name, learning_rate=0.1))[-1]
    np.testing.assert_allclose(params, expected, rtol=1e-5, atol=1e-6)


# --- state_dict -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_state_dict_round_trip_continues_identically(name, tmp_path):
    original = optimizers.get(name, learning_rate=0.1)
    params = np.array(W0)
    for gradient in GRADIENTS[:3]:
        original.step(params, np.array(gradient))

    # Through an .npz file, as a checkpoint stores it.
    np.savez(tmp_path / "state.npz", **original.state_dict())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as stored:
        state = {key: stored[key] for key in stored.files}
    restored = optimizers.get(name, learning_rate=0.1)
    restored.load_state_dict(state)
    restored_params = params.copy()

    for gradient in GRADIENTS[3:]:
        original.step(params, np.array(gradient))
        restored.step(restored_params, np.array(gradient))
    np.testing.assert_array_equal(restored_params, params)
    assert restored.step_count == original.step_count


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("sgd", ["step_count"]),
        ("momentum", ["step_count", "velocity"]),
        ("nag", ["step_count", "velocity"]),
        ("rmsprop", ["step_count", "second_moment"]),
        ("adam", ["step_count", "first_moment", "second_moment"]),
        ("nadam", ["step_count", "first_moment", "second_moment"]),
    ],
)
def test_state_dict_keys(name, keys):
    optimizer = optimizers.get(name)
    optimizer.step(np.zeros(2), np.ones(2))
    assert sorted(optimizer.state_dict()) == sorted(keys)


def test_state_dict_is_a_copy():
    optimizer = optimizers.get("momentum")
    params = np.zeros(2)
    optimizer.step(params, np.ones(2))
    saved = optimizer.state_dict()["velocity"].copy()
    state = optimizer.state_dict()
    optimizer.step(params, np.ones(2))
    np.testing.assert_array_equal(state["velocity"], saved)


def test_state_dict_empty_before_first_step():
    assert optimizers.get("adam").state_dict() == {"step_count": 0}


def test_load_state_dict_rejects_unknown_key():
    with pytest.raises(ValueError, match="unknown key.*'velocity'"):
        optimizers.get("adam").load_state_dict({"step_count": 1, "velocity": np.zeros(2)})


def test_load_state_dict_rejects_missing_array():
    state = {"step_count": 1, "first_moment": np.zeros(2)}
    with pytest.raises(ValueError, match="missing.*second_moment"):
        optimizers.get("adam").load_state_dict(state)


def test_load_state_dict_rejects_steps_without_arrays():
    with pytest.raises(ValueError, match="step_count 3"):
        optimizers.get("momentum").load_state_dict({"step_count": 3})


def test_load_state_dict_rejects_mismatched_shapes():
    state = {"step_count": 1, "first_moment": np.zeros(2), "second_moment": np.zeros(3)}
    with pytest.raises(ValueError, match="share one shape"):
        optimizers.get("nadam").load_state_dict(state)


def test_load_state_dict_rejects_shape_of_other_params():
    optimizer = optimizers.get("momentum")
    optimizer.step(np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match=r"shape \(5,\).*shape \(2,\)"):
        optimizer.load_state_dict({"step_count": 1, "velocity": np.zeros(5)})


def test_load_state_dict_rejects_negative_step_count():
    with pytest.raises(ValueError, match="step_count must be a non-negative integer, got -1"):
        optimizers.get("sgd").load_state_dict({"step_count": -1})


# --- trajectory -----------------------------------------------------------------------------


def test_trajectory_leaves_optimizer_and_start_alone():
    optimizer = optimizers.get("adam", learning_rate=0.1)
    optimizer.step(np.zeros(2), np.ones(2))
    before = optimizer.state_dict()
    start = np.array([1.0, -1.0])
    optimizers.trajectory(optimizer, half_square_gradient, start, steps=4)
    np.testing.assert_array_equal(start, [1.0, -1.0])
    after = optimizer.state_dict()
    assert after["step_count"] == before["step_count"]
    np.testing.assert_array_equal(after["first_moment"], before["first_moment"])


def test_trajectory_repeats_exactly():
    optimizer = optimizers.get("nadam", learning_rate=0.05)
    first = optimizers.trajectory(optimizer, rosenbrock_gradient, [-1.2, 1.0], steps=20)
    second = optimizers.trajectory(optimizer, rosenbrock_gradient, [-1.2, 1.0], steps=20)
    np.testing.assert_array_equal(first, second)


def test_trajectory_excludes_start():
    # SGD on ½w² with η = 0.5 halves w each step: 4 → 2, 1.
    path = optimizers.trajectory(
        optimizers.get("sgd", learning_rate=0.5), half_square_gradient, [4.0], steps=2
    )
    np.testing.assert_array_equal(path, [[2.0], [1.0]])


def test_trajectory_rejects_negative_steps():
    with pytest.raises(ValueError, match="got -1"):
        optimizers.trajectory(optimizers.get("sgd"), half_square_gradient, [1.0], steps=-1)


# --- gradient clipping ----------------------------------------------------------------------


def test_clip_gradient_norm_scales_long_gradient():
    # ‖(3, 4)‖ = 5 > 1, so g becomes (3, 4)·1 / (5 + 1e-6).
    gradient = np.array([3.0, 4.0])
    norm = optimizers.clip_gradient_norm(gradient, max_norm=1.0)
    assert norm == 5.0
    np.testing.assert_allclose(gradient, [3.0 / 5.000001, 4.0 / 5.000001], rtol=1e-15)


def test_clip_gradient_norm_keeps_short_gradient():
    gradient = np.array([0.3, 0.4])
    norm = optimizers.clip_gradient_norm(gradient, max_norm=1.0)
    assert norm == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_array_equal(gradient, [0.3, 0.4])


def test_clip_gradient_norm_handles_float32_overflow():
    # 1e30² overflows float32, but the norm 2e30 fits it.
    gradient = np.full(4, 1e30, dtype=np.float32)
    norm = optimizers.clip_gradient_norm(gradient, max_norm=1.0)
    assert norm == pytest.approx(2e30, rel=1e-6)
    np.testing.assert_allclose(gradient, np.full(4, 0.5), rtol=1e-6)


def test_clip_gradient_norm_rejects_zero_max_norm():
    with pytest.raises(ValueError, match="max_norm must be > 0, got 0.0"):
        optimizers.clip_gradient_norm(np.ones(2), max_norm=0.0)


@pytest.mark.parametrize("max_norm", [0.5, 29.0, 1e3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_gradient_norm_matches_torch(max_norm, dtype):
    torch = require("torch")
    rng = np.random.default_rng(7)
    # These 1000 standard normals have norm 29.85: the three limits clip hard, clip
    # barely and leave the gradient alone.
    values = rng.standard_normal(1000).astype(dtype)
    parameter = torch.nn.Parameter(torch.zeros(1000, dtype=torch.from_numpy(values).dtype))
    parameter.grad = torch.from_numpy(values.copy())
    expected_norm = float(torch.nn.utils.clip_grad_norm_([parameter], max_norm))

    gradient = values.copy()
    norm = optimizers.clip_gradient_norm(gradient, max_norm)
    assert norm == pytest.approx(expected_norm, rel=1e-5)
    np.testing.assert_allclose(gradient, parameter.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_gradient_norm_reports_nan():
    gradient = np.array([np.nan, 1.0])
    assert math.isnan(optimizers.clip_gradient_norm(gradient, max_norm=1.0))
