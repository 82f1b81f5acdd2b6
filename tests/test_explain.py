"""explain's walk through one example, and the most confident failures of a network."""

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.explanation import ArraySummary, explain, input_gradient, most_confident_failures


def small_network(activation="tanh", loss="cross_entropy", weight_decay=0.0, seed=0):
    rng = np.random.default_rng(seed + 100)
    net = cr.Network([5, 4, 3, 3], activation=activation, loss=loss, weight_decay=weight_decay,
                     seed=seed, dtype="float64")
    # Non-zero biases, so that no ReLU unit sits on its kink by construction.
    net.parameters[:] += 0.1 * rng.standard_normal(net.n_parameters)
    return net


def numpy_forward(net, x):
    """Forward pass in float64 written out here, independent of the network's own code."""
    functions = {
        "tanh": np.tanh,
        "relu": lambda a: np.maximum(a, 0.0),
        "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    }
    h = np.asarray(x, dtype=np.float64)
    for k in range(net.n_layers):
        a = net.weights[k].astype(np.float64) @ h + net.biases[k]
        h = functions[net.activation_names[k]](a) if k < net.n_layers - 1 else a
    exponentials = np.exp(h - h.max())
    return exponentials / exponentials.sum()


def example(seed=1, features=5):
    return np.random.default_rng(seed).standard_normal(features)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_explain_output_gradient_is_prediction_minus_truth(activation):
    net = small_network(activation)
    x, label = example(), 2
    result = explain(net, x, label)
    one_hot = np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(result.output_gradient.values,
                               net.predict_proba(x[None])[0] - one_hot, rtol=0, atol=1e-14)
    np.testing.assert_allclose(result.output_gradient.values, numpy_forward(net, x) - one_hot,
                               rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result.one_hot.values, one_hot)
    np.testing.assert_allclose(result.probabilities.values, numpy_forward(net, x), atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_explain_gradients_equal_core_batch_of_one(activation, weight_decay):
    net = small_network(activation, weight_decay=weight_decay)
    x, label = example(), 1
    result = explain(net, x, label)
    _, core = net.loss_and_gradients(x[None], [label])
    L = net.n_layers
    assert [step.layer for step in result.layers] == list(range(L, 0, -1))
    for step in result.layers:
        k = step.layer
        np.testing.assert_array_equal(step.weights.values, core.weights[k - 1])
        np.testing.assert_array_equal(step.biases.values, core.biases[k - 1])
        if k > 1:
            np.testing.assert_array_equal(step.below_activation.values, core.activations[k - 2][0])
            np.testing.assert_array_equal(step.below_pre_activation.values,
                                          core.pre_activations[k - 2][0])
        else:
            assert step.below_pre_activation is None
    np.testing.assert_array_equal(result.output_gradient.values, core.pre_activations[L - 1][0])


def test_explain_input_gradient_matches_central_differences():
    net = small_network("tanh", weight_decay=0.2)
    x, label = example(), 0
    result = explain(net, x, label)
    step = 1e-6
    numeric = np.empty_like(x)
    for i in range(x.size):
        shifted = x.copy()
        shifted[i] += step
        above = net.loss(shifted[None], [label])
        shifted[i] -= 2 * step
        below = net.loss(shifted[None], [label])
        numeric[i] = (above - below) / (2 * step)
    input_step = result.layers[-1]
    assert input_step.below_activation.symbol == "∇_{h_0} L"
    np.testing.assert_allclose(input_step.below_activation.values, numeric, rtol=1e-6, atol=1e-9)


def test_input_gradient_is_rows_times_first_weights():
    net = small_network("relu")
    X = np.random.default_rng(3).standard_normal((4, 5))
    _, gradients = net.loss_and_gradients(X, [0, 1, 2, 0])
    expected = gradients.pre_activations[0] @ net.weights[0]
    np.testing.assert_array_equal(input_gradient(net, gradients), expected)


def test_explain_squared_error_applies_softmax_jacobian():
    net = small_network("tanh", loss="mean_squared_error")
    x, label = example(), 2
    result = explain(net, x, label)
    y_hat = numpy_forward(net, x)
    d = y_hat - np.array([0.0, 0.0, 1.0])
    jacobian = np.diag(y_hat) - np.outer(y_hat, y_hat)
    np.testing.assert_allclose(result.output_gradient.values, jacobian @ d, atol=1e-12)
    np.testing.assert_allclose(result.output_error.values, d, atol=1e-12)
    assert not np.allclose(result.output_gradient.values, d)
    assert "ŷ ⊙ (d − ŷ·d)" in result.format_text()


def test_explain_text_follows_course_order():
    net = small_network("relu", weight_decay=0.1)
    text = explain(net, example(), 1, index=7, source="toy test set").format_text()
    symbols = [
        "Forward pass", "h_0 = x", "a_1 = b_1 + W_1 h_0", "h_1 = relu(a_1)", "a_3 = ",
        "Output layer", "ŷ_j", "e(ℓ)_j", "∇_{a_3} L = ŷ − e(ℓ)",
        "∇_{W_3} L", "∇_{b_3} L", "∇_{h_2} L", "∇_{a_2} L",
        "∇_{W_2} L", "∇_{b_2} L", "∇_{h_1} L", "∇_{a_1} L",
        "∇_{W_1} L", "∇_{b_1} L", "∇_{h_0} L",
    ]
    positions = [text.index(symbol) for symbol in symbols]
    assert positions == sorted(positions)
    assert "Example 7 of the toy test set" in text
    assert "∇_{a_3} L · h_2ᵀ + λ W_3" in text
    assert "(λ/2) Σ_k ‖W_k‖²" in text


def test_explain_text_shows_shape_norm_and_largest():
    net = cr.Network([2, 2], seed=0, dtype="float64")
    net.weights[0][...] = [[1.0, 0.0], [0.0, 1.0]]
    # Logits [2, 0]: ŷ_0 = 1 / (1 + e^-2) = 0.8807970779778823, and with ℓ = 1 the output
    # gradient is [0.8808, -0.8808], norm sqrt(2) * 0.8808 = 1.245650...
    result = explain(net, [2.0, 0.0], 1)
    text = result.format_text(top=2)
    assert result.output_gradient.norm == pytest.approx(math.sqrt(2) * 0.8807970779778823, rel=1e-12)
    assert "shape (2,)" in text
    assert "norm 1.246" in text
    assert "[0] 0.8808" in text
    assert "[1] -0.8808" in text
    assert "shape (2, 2)" in text


def test_array_summary_largest_by_magnitude():
    summary = ArraySummary("∇", "", np.array([[0.1, -3.0], [2.0, 0.0]]))
    assert summary.largest(2) == [((0, 1), -3.0), ((1, 0), 2.0)]
    assert summary.norm == pytest.approx(math.sqrt(0.01 + 9.0 + 4.0))


def test_explain_model_applies_preprocessing_and_mapping():
    from chainrule.preprocessing import LabelMapping, Preprocessor
    from chainrule.training import Model

    net = cr.Network([4, 3, 2], activation="sigmoid", seed=2, dtype="float64")
    images = np.array([[[0, 255], [51, 102]], [[10, 20], [30, 40]]], dtype=np.uint8)
    model = Model(net, Preprocessor(scale=True, dtype="float64").fit(images),
                  LabelMapping(np.array([3, 7])), ["three", "seven"], {})
    result = explain(model, images[0], 7)
    assert result.label == 1
    np.testing.assert_allclose(result.forward[0].values, [0.0, 1.0, 0.2, 0.4])
    np.testing.assert_array_equal(result.raw_input, images[0])
    assert result.class_name(1) == "seven"


def test_explain_rejects_two_labels():
    with pytest.raises(ValueError, match="single label"):
        explain(small_network(), example(), [0, 1])


def test_explain_rejects_non_network():
    with pytest.raises(TypeError, match="Network"):
        explain("model", example(), 0)


# --------------------------------------------------------------------------------- failures


def test_most_confident_failures_order():
    net = cr.Network([2, 2], seed=0, dtype="float64")
    net.weights[0][...] = np.eye(2)
    # Logits are the inputs; ŷ of the larger one is 1 / (1 + e^-gap):
    # gap 3 -> 0.9525741268224334, gap 1 -> 0.7310585786300049, gap 2 -> 0.8807970779778823.
    X = np.array([[3.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 5.0]])
    y = np.array([1, 0, 1, 1])
    failures = most_confident_failures(net, X, y, count=5)
    assert [f.index for f in failures] == [0, 2, 1]
    assert failures[0].probability == pytest.approx(0.9525741268224334, rel=1e-12)
    assert failures[0].label_probability == pytest.approx(1 - 0.9525741268224334, rel=1e-10)
    assert (failures[2].label, failures[2].predicted) == (0, 1)
    assert len(most_confident_failures(net, X, y, count=1)) == 1
