"""Gradient checks: every activation × loss pair, the ReLU kink, and a broken derivative."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import activations


@pytest.mark.parametrize("loss", cr.losses.names())
@pytest.mark.parametrize("activation", cr.activations.names())
@pytest.mark.parametrize("n_hidden", [0, 1, 2, 3, 4])
def test_gradcheck_every_pair_and_depth(activation, loss, n_hidden):
    rng = np.random.default_rng(n_hidden)
    net = cr.Network(
        [4] + [5] * n_hidden + [3], activation=activation, loss=loss,
        weight_decay=0.05, seed=n_hidden, dtype="float64",
    )
    # Non-zero biases so that no unit sits on a kink by construction.
    net.parameters[:] += 0.1 * rng.standard_normal(net.n_parameters)
    X = rng.standard_normal((6, 4))
    y = rng.integers(0, 3, size=6)
    report = cr.gradcheck(net, X, y)
    assert report.passed, report.format_table()
    assert report.max_error < 1e-7
    assert len(report.rows) == 2 * (n_hidden + 1)
    assert all(row.checked > 0 for row in report.rows)


def test_gradcheck_runs_in_float64_for_float32_network():
    net = cr.Network([3, 4, 2], activation="tanh", seed=1, dtype="float32")
    before = net.parameters.copy()
    report = cr.gradcheck(net, np.ones((2, 3)), [0, 1])
    assert report.max_error < 1e-7
    np.testing.assert_array_equal(net.parameters, before)


def test_gradcheck_samples_large_arrays():
    net = cr.Network([200, 60, 2], activation="tanh", seed=0, dtype="float64")
    report = cr.gradcheck(net, np.random.default_rng(0).standard_normal((2, 200)), [0, 1])
    first = report.rows[0]
    assert first.shape == (60, 200)
    assert first.checked + first.skipped == 1000
    assert report.rows[1].checked == 60
    assert report.passed


def relu_kink_network(hidden_bias):
    """1 input -> 1 ReLU unit (w = 1) -> 2 softmax outputs with weights [2, -1]."""
    net = cr.Network([1, 1, 2], activation="relu", seed=0, dtype="float64")
    net.weights[0][...] = [[1.0]]
    net.biases[0][...] = [hidden_bias]
    net.weights[1][...] = [[2.0], [-1.0]]
    net.biases[1][...] = [0.0, 0.0]
    return net


def test_gradcheck_skips_relu_kink():
    # A gradient check on the ReLU kink under softmax cross-entropy: x = 1, w = 1, b = -1 puts the hidden
    # pre-activation exactly on the kink. Backpropagation uses relu'(0) = 0, so dL/db = 0,
    # while the central difference averages the two one-sided slopes: with
    # z = [2h, -h] and y = 0, L(h) = log(1 + e^{-3h}), so the right slope is
    # dL/dh at h=0 = -3/2 and the average is about -0.75 (-0.7499437500 for h = 1e-4).
    net = relu_kink_network(-1.0)
    X, y = np.array([[1.0]]), np.array([0])
    _, grads = net.loss_and_gradients(X, y)
    assert grads.biases[0][0] == 0.0
    report = cr.gradcheck(net, X, y)
    b1 = report.rows[1]
    assert b1.name == "b1"
    assert b1.skipped == 1
    assert b1.checked == 0
    assert report.passed


def test_gradcheck_passes_away_from_kink():
    # b = -0.25: a = 0.75, z = [1.5, -0.75], ŷ_1 = 1 / (1 + e^{2.25}), and
    # dL/db = dL/dh = 2(ŷ_0 - 1) - ŷ_1 = -3 ŷ_1 = -0.2860483946973284.
    net = relu_kink_network(-0.25)
    X, y = np.array([[1.0]]), np.array([0])
    _, grads = net.loss_and_gradients(X, y)
    assert grads.biases[0][0] == pytest.approx(-0.2860483946973284, abs=1e-15)
    report = cr.gradcheck(net, X, y)
    assert report.rows[1].skipped == 0
    assert report.rows[1].checked == 1
    assert report.passed


class WrongSigmoid(activations.Sigmoid):
    """A sigmoid whose derivative lacks the (1 - h) factor, to prove gradcheck can fail."""

    name = "sigmoid"

    def backward(self, grad_h, a, h, out=None):
        return np.multiply(grad_h, h, out=out)


def test_gradcheck_fails_on_broken_derivative():
    net = cr.Network([3, 4, 2], activation="sigmoid", seed=0, dtype="float64")
    original_copy = net.copy

    # gradcheck works on a float64 copy rebuilt from the activation names, so the broken
    # activation is put into that copy.
    def copy_with_broken_activation(dtype=None):
        duplicate = original_copy(dtype)
        duplicate.activation_functions = [WrongSigmoid()]
        return duplicate

    net.copy = copy_with_broken_activation
    report = cr.gradcheck(net, np.ones((2, 3)), [0, 1])
    assert not report.passed
    assert report.rows[0].error > 1e-2
    assert "FAIL" in report.format_table()


def test_report_table_lists_every_array():
    net = cr.Network([3, 4, 2], seed=0)
    table = cr.gradcheck(net, np.ones((2, 3)), [0, 1]).format_table()
    for name in ("W1", "b1", "W2", "b2"):
        assert name in table
    assert "PASS" in table
