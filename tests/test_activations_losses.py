"""Activations and losses: values, derivatives and numerical stability at the tails."""

import math

import numpy as np
import pytest

from chainrule import activations, losses


# ---------------------------------------------------------------- activations

def test_activation_names_case_insensitive():
    assert activations.get("ReLU").name == "relu"
    assert activations.get("Logistic").name == "sigmoid"
    assert activations.get("TANH").name == "tanh"
    assert activations.get("Leaky_ReLU").name == "leaky_relu"


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*sigmoid.*relu"):
        activations.get("swish")


@pytest.mark.parametrize("name", activations.names())
def test_activation_derivative_matches_central_difference(name):
    act = activations.get(name)
    # Points away from 0 so the ReLU kink is not straddled.
    a = np.array([[-2.5, -0.7, -0.01, 0.02, 0.9, 3.1]])
    h = act.forward(a)
    step = 1e-6
    numeric = (act.forward(a + step) - act.forward(a - step)) / (2 * step)
    analytic = act.backward(np.ones_like(a), a, h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(act.derivative(a, h), numeric, rtol=1e-6, atol=1e-9)


def test_activation_values_by_hand():
    a = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_array_equal(activations.get("relu").forward(a), [[0.0, 0.0, 3.0]])
    np.testing.assert_allclose(activations.get("leaky_relu").forward(a), [[-0.02, 0.0, 3.0]])
    np.testing.assert_array_equal(activations.get("identity").forward(a), a)
    # tanh(3) = 0.9950547536867305, sigmoid(-2) = 1 / (1 + e^2) = 0.11920292202211755
    np.testing.assert_allclose(activations.get("tanh").forward(a)[0, 2], 0.9950547536867305)
    np.testing.assert_allclose(activations.get("sigmoid").forward(a)[0, 0], 0.11920292202211755)


def test_relu_derivative_at_kink_is_zero():
    a = np.array([[0.0]])
    relu = activations.get("relu")
    assert relu.derivative(a, relu.forward(a))[0, 0] == 0.0
    assert relu.backward(np.ones_like(a), a, relu.forward(a))[0, 0] == 0.0


def test_backward_does_not_modify_gradient_without_out():
    a = np.array([[-1.0, 2.0]])
    for name in activations.names():
        act = activations.get(name)
        grad_h = np.array([[5.0, 7.0]])
        act.backward(grad_h, a, act.forward(a))
        np.testing.assert_array_equal(grad_h, [[5.0, 7.0]])


def test_sigmoid_stable_at_both_tails():
    # The naive 1 / (1 + exp(-x)) overflows in exp below about -709.
    x = np.array([-1000.0, -710.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise", invalid="raise"):
        h = activations.sigmoid(x)
        derivative = activations.get("sigmoid").derivative(x, h)
    expected = [0.0, 4.4762862257e-309, 9.3576229688e-14, 0.5, 0.9999999999999065, 1.0]
    np.testing.assert_allclose(h, expected, rtol=1e-9, atol=0)
    assert derivative[0] == 0.0
    assert derivative[-1] == 0.0
    assert not np.isnan(derivative).any()


def test_sigmoid_float32_tails_without_warning():
    x = np.array([[-1000.0, 1000.0, -90.0, 90.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise"):
        h = activations.sigmoid(x)
    assert h.dtype == np.float32
    np.testing.assert_array_equal(h[0, [0, 1]], [0.0, 1.0])


# ---------------------------------------------------------------- softmax

def test_softmax_large_positive_logits():
    # softmax([1000, 1001, 1002]) equals softmax([0, 1, 2]).
    with np.errstate(over="raise", invalid="raise"):
        result = losses.softmax(np.array([1000.0, 1001.0, 1002.0]))
    np.testing.assert_allclose(result, [0.0900305732, 0.2447284711, 0.6652409558], atol=1e-10)


def test_softmax_float32_overflow_case():
    # In float32, exp(90) already overflows a float32 in the naive form.
    with np.errstate(over="raise", invalid="raise"):
        result = losses.softmax(np.array([90.0, 2.0, -2.0], dtype=np.float32))
    assert result.dtype == np.float32
    assert not np.isnan(result).any()
    assert abs(float(result.sum()) - 1.0) < 1e-6
    assert int(np.argmax(result)) == 0
    np.testing.assert_allclose(result, [1.0, 6.0546e-39, 1.1089e-40], rtol=1e-3)


def test_softmax_all_very_negative_logits():
    # Every exp underflows to 0 in the naive form, giving 0/0 = NaN.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        result = losses.softmax(np.array([-1000.0, -1001.0, -1002.0]))
    np.testing.assert_allclose(result, [0.6652409558, 0.2447284711, 0.0900305732], atol=1e-10)


def test_softmax_rows_independent():
    logits = np.array([[0.0, 0.0], [1000.0, 0.0]])
    np.testing.assert_allclose(losses.softmax(logits), [[0.5, 0.5], [1.0, 0.0]])


# ---------------------------------------------------------------- losses

def test_cross_entropy_from_logits_never_log_zero():
    # The probability of the true class underflows to 0, log(0) = -inf naively.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss_1000, gradient = losses.CrossEntropy().value_and_gradient(
            np.array([[0.0, -1000.0]]), np.array([1])
        )
        loss_800 = losses.cross_entropy(np.array([[0.0, -800.0]]), np.array([1]))
    assert loss_1000 == 1000.0
    assert loss_800 == 800.0
    np.testing.assert_array_equal(gradient, [[1.0, -1.0]])


def test_cross_entropy_exact_prediction_is_zero():
    # 0 * log(0) = NaN in the naive -sum(y log ŷ).
    with np.errstate(over="raise", invalid="raise"):
        loss, gradient = losses.CrossEntropy().value_and_gradient(
            np.array([[-1000.0, -1000.0, 0.0]]), np.array([2])
        )
    assert loss == 0.0
    np.testing.assert_array_equal(gradient, [[0.0, 0.0, 0.0]])


def test_mean_squared_error_softmax_jacobian():
    # Softmax with squared error, logits [1, 2, 3], true class 2, L = ½ Σ (ŷ − e)². Values worked out in
    # float64 outside chainrule: ŷ = [0.0900305732, 0.2447284711, 0.6652409558],
    # L = 0.0900305732, dL/dz = [0.0220330445, 0.0977510046, -0.1197840491].
    loss, gradient = losses.MeanSquaredError().value_and_gradient(
        np.array([[1.0, 2.0, 3.0]]), np.array([2])
    )
    assert loss == pytest.approx(0.0900305732, abs=1e-10)
    np.testing.assert_allclose(gradient[0], [0.0220330445, 0.0977510046, -0.1197840491], atol=1e-10)
    # The two known wrong gradients must be rejected.
    wrong_shortcut = np.array([0.0900, 0.2447, -0.3348])
    wrong_sigmoid_form = np.array([0.00738, 0.04523, -0.07455])
    assert np.abs(gradient[0] - wrong_shortcut).max() > 0.1
    assert np.abs(gradient[0] - wrong_sigmoid_form).max() > 0.01


@pytest.mark.parametrize("loss_name", losses.names())
def test_loss_gradient_matches_central_difference(loss_name):
    loss = losses.get(loss_name)
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 5))
    labels = np.array([0, 4, 2, 2])
    _, gradient = loss.value_and_gradient(logits.copy(), labels)
    step = 1e-6
    numeric = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        plus, minus = logits.copy(), logits.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (loss.value(plus, labels) - loss.value(minus, labels)) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, atol=1e-9)


def test_cross_entropy_is_mean_over_batch():
    # Two rows with logits 0: each loss is log 2.
    value = losses.cross_entropy(np.zeros((2, 2)), np.array([0, 1]))
    assert value == pytest.approx(math.log(2.0), abs=1e-15)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*cross_entropy.*mean_squared_error"):
        losses.get("hinge")
