"""The network: construction, forward pass, a hand-worked backward pass and bad input."""

import math

import numpy as np
import pytest

import chainrule as cr


def make_2_3_2():
    """A 2-3-2 ReLU network with weights written out, for the hand-worked example."""
    net = cr.Network([2, 3, 2], activation="relu", seed=0, dtype="float64")
    net.weights[0][...] = [[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]]
    net.biases[0][...] = [0.1, 0.0, -0.1]
    net.weights[1][...] = [[1.0, -1.0, 0.5], [-0.5, 1.0, 2.0]]
    net.biases[1][...] = [0.0, 0.1]
    return net


def test_hand_worked_2_3_2_network():
    # x = [1, 2], true class y = 1.
    # a_1 = W_1 x + b_1 = [0.1+0.4+0.1, -0.3+0.8+0.0, 0.5-1.2-0.1] = [0.6, 0.5, -0.8]
    # h_1 = relu(a_1) = [0.6, 0.5, 0.0]
    # a_2 = W_2 h_1 + b_2 = [0.6-0.5+0, -0.3+0.5+0+0.1] = [0.1, 0.3]
    # ŷ = softmax(a_2): ŷ_0 = 1/(1+e^0.2) = p = 0.45016600268752216, ŷ_1 = 1 - p
    # L = -log ŷ_1 = log(1 + e^-0.2) = 0.5981388693815918
    # ∇a_2 = ŷ - e(1) = [p, -p]
    # ∇W_2 = ∇a_2 h_1ᵀ = [[0.6p, 0.5p, 0], [-0.6p, -0.5p, 0]], ∇b_2 = [p, -p]
    # ∇h_1 = W_2ᵀ ∇a_2 = [p + 0.5p, -p - p, 0.5p - 2p] = [1.5p, -2p, -1.5p]
    # ∇a_1 = ∇h_1 ⊙ relu'(a_1) = [1.5p, -2p, 0]
    # ∇W_1 = ∇a_1 xᵀ = [[1.5p, 3p], [-2p, -4p], [0, 0]], ∇b_1 = [1.5p, -2p, 0]
    p = 0.45016600268752216
    net = make_2_3_2()
    loss, grads = net.loss_and_gradients(np.array([[1.0, 2.0]]), np.array([1]))

    assert loss == pytest.approx(0.5981388693815918, abs=1e-15)
    np.testing.assert_allclose(grads.pre_activations[1], [[p, -p]], atol=1e-15)
    np.testing.assert_allclose(
        grads.weights[1],
        [[0.2700996016125133, 0.22508300134376108, 0.0],
         [-0.2700996016125133, -0.22508300134376108, 0.0]],
        atol=1e-15,
    )
    np.testing.assert_allclose(grads.biases[1], [p, -p], atol=1e-15)
    np.testing.assert_allclose(
        grads.activations[0], [[0.6752490040312833, -0.9003320053750443, -0.6752490040312833]],
        atol=1e-15,
    )
    np.testing.assert_allclose(
        grads.pre_activations[0], [[0.6752490040312833, -0.9003320053750443, 0.0]], atol=1e-15
    )
    np.testing.assert_allclose(
        grads.weights[0],
        [[0.6752490040312833, 1.3504980080625666],
         [-0.9003320053750443, -1.8006640107500886],
         [0.0, 0.0]],
        atol=1e-15,
    )
    np.testing.assert_allclose(
        grads.biases[0], [0.6752490040312833, -0.9003320053750443, 0.0], atol=1e-15
    )


def test_hand_worked_weight_decay_term():
    # λ = 0.5 adds λ/2 Σ‖W‖² to the loss and λW to each weight gradient, nothing to biases.
    # Σ‖W_1‖² = 0.01+0.04+0.09+0.16+0.25+0.36 = 0.91; Σ‖W_2‖² = 1+1+0.25+0.25+1+4 = 7.5
    # penalty = 0.25 * 8.41 = 2.1025
    plain = make_2_3_2()
    decayed = make_2_3_2()
    decayed.weight_decay = 0.5
    X, y = np.array([[1.0, 2.0]]), np.array([1])
    loss_plain, grads_plain = plain.loss_and_gradients(X, y)
    loss_decayed, grads_decayed = decayed.loss_and_gradients(X, y)
    assert loss_decayed - loss_plain == pytest.approx(2.1025, abs=1e-12)
    np.testing.assert_allclose(
        grads_decayed.weights[0] - grads_plain.weights[0], 0.5 * plain.weights[0], atol=1e-15
    )
    np.testing.assert_array_equal(grads_decayed.biases[0], grads_plain.biases[0])
    np.testing.assert_array_equal(grads_decayed.biases[1], grads_plain.biases[1])


def test_batch_gradient_is_mean_of_example_gradients():
    net = cr.Network([3, 4, 3], activation="tanh", seed=2, dtype="float64")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3))
    y = np.array([0, 1, 2, 1, 0])
    _, batch = net.loss_and_gradients(X, y)
    singles = [net.loss_and_gradients(X[i:i + 1], y[i:i + 1])[1].flat for i in range(5)]
    np.testing.assert_allclose(batch.flat, np.mean(singles, axis=0), atol=1e-14)


def test_weights_are_live_views():
    net = cr.Network([3, 2], seed=0)
    net.weights[0][...] = 0.0
    net.biases[0][...] = [5.0, -5.0]
    assert net.parameters[:6].sum() == 0.0
    np.testing.assert_array_equal(net.predict(np.ones((2, 3))), [0, 0])
    net.parameters[:] = 0.0
    np.testing.assert_array_equal(net.biases[0], [0.0, 0.0])


def test_weight_shapes_follow_course():
    net = cr.Network([784, 128, 64, 10], seed=0)
    assert [w.shape for w in net.weights] == [(128, 784), (64, 128), (10, 64)]
    assert [b.shape for b in net.biases] == [(128,), (64,), (10,)]
    assert net.n_parameters == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert all(np.all(b == 0) for b in net.biases)


def test_public_results_are_fresh_arrays():
    net = cr.Network([2, 3, 2], seed=0)
    X = np.array([[1.0, 2.0]])
    first = net.forward(X)
    _, grads_first = net.loss_and_gradients(X, [0])
    saved_logits, saved_flat = first.copy(), grads_first.flat.copy()
    net.forward(np.array([[5.0, -3.0]]))
    net.loss_and_gradients(np.array([[5.0, -3.0]]), [1])
    np.testing.assert_array_equal(first, saved_logits)
    np.testing.assert_array_equal(grads_first.flat, saved_flat)


def test_softmax_regression_without_hidden_layers():
    net = cr.Network([3, 3], seed=0, dtype="float64")
    net.weights[0][...] = np.eye(3)
    # Softmax with squared error through backpropagation: logits [1, 2, 3] from x = [1, 2, 3] and W = I.
    net.loss_function = cr.losses.get("mean_squared_error")
    net.loss_name = "mean_squared_error"
    _, grads = net.loss_and_gradients(np.array([[1.0, 2.0, 3.0]]), np.array([2]))
    np.testing.assert_allclose(grads.biases[0], [0.0220330445, 0.0977510046, -0.1197840491], atol=1e-10)


def test_predict_proba_rows_sum_to_one():
    net = cr.Network([4, 8, 5], activation="sigmoid", seed=1)
    probs = net.predict_proba(np.random.default_rng(0).standard_normal((7, 4)))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_predict_proba_extreme_output_bias():
    # Every logit very negative, through a model: output weights 0 and bias [-1000, -1001, -1002].
    net = cr.Network([2, 3], seed=0, dtype="float64")
    net.weights[0][...] = 0.0
    net.biases[0][...] = [-1000.0, -1001.0, -1002.0]
    X = np.array([[0.3, -0.2], [1.0, 4.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        probs = net.predict_proba(X)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(probs[0], [0.6652409558, 0.2447284711, 0.0900305732], atol=1e-10)
    np.testing.assert_array_equal(net.predict(X), [0, 0])


def test_seed_reproducible_and_generator_accepted():
    first = cr.Network([5, 4, 3], seed=7)
    second = cr.Network([5, 4, 3], seed=7)
    third = cr.Network([5, 4, 3], seed=np.random.default_rng(7))
    other = cr.Network([5, 4, 3], seed=8)
    np.testing.assert_array_equal(first.parameters, second.parameters)
    np.testing.assert_array_equal(first.parameters, third.parameters)
    assert not np.array_equal(first.parameters, other.parameters)


@pytest.mark.parametrize(
    "name, expected_std",
    [
        ("random", 0.01),
        ("xavier", math.sqrt(2 / (400 + 300))),
        ("xavier_uniform", math.sqrt(6 / 700) / math.sqrt(3)),
        ("he", math.sqrt(2 / 400)),
    ],
)
def test_initialisation_scales(name, expected_std):
    net = cr.Network([400, 300, 2], weight_init=name, seed=0, dtype="float64")
    assert net.weights[0].std() == pytest.approx(expected_std, rel=0.02)
    assert abs(net.weights[0].mean()) < 0.05 * expected_std + 1e-4


def test_zeros_initialisation_and_names():
    net = cr.Network([4, 3, 2], weight_init="Zeros", seed=0)
    assert not net.parameters.any()
    assert cr.Network([4, 3, 2], weight_init="Xavier", seed=0).weight_init == "xavier"


def test_activation_per_layer():
    net = cr.Network([3, 4, 4, 2], activation=["ReLU", "tanh"], seed=0)
    assert net.activation_names == ["relu", "tanh"]
    with pytest.raises(ValueError, match="got 1 activations for 2 hidden layers"):
        cr.Network([3, 4, 4, 2], activation=["relu"], seed=0)


def test_float64_on_request():
    net = cr.Network([3, 2], dtype="float64", seed=0)
    assert net.parameters.dtype == np.float64
    assert net.forward(np.ones((1, 3), dtype=np.float32)).dtype == np.float64


def test_config_round_trip():
    net = cr.Network([3, 5, 2], activation="tanh", weight_decay=0.01, seed=4)
    rebuilt = cr.Network.from_config(net.config(), net.parameters)
    X = np.random.default_rng(1).standard_normal((3, 3))
    np.testing.assert_array_equal(rebuilt.forward(X), net.forward(X))


# ---------------------------------------------------------------- bad input


@pytest.fixture
def net_2_features():
    return cr.Network([2, 3, 2], seed=0)


def test_one_dimensional_sample_gets_reshape_hint(net_2_features):
    # A single sample passed as a 1-D vector must not be read as one feature per sample.
    with pytest.raises(ValueError, match=r"1-D array of shape \(2,\).*reshape\(1, -1\)"):
        net_2_features.predict(np.array([0.5, -0.2]))


def test_empty_batch_rejected(net_2_features):
    with pytest.raises(ValueError, match="0 samples"):
        net_2_features.predict(np.empty((0, 2)))


def test_wrong_feature_count_names_both(net_2_features):
    with pytest.raises(ValueError, match="3 features per sample, but the network expects 2"):
        net_2_features.predict(np.zeros((1, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_rejected(net_2_features, bad):
    X = np.zeros((3, 2))
    X[1, 0] = bad
    with pytest.raises(ValueError, match=r"NaN or infinite.*index \(1, 0\)"):
        net_2_features.forward(X)


def test_labels_outside_range_named(net_2_features):
    with pytest.raises(ValueError, match=r"labels must be in 0..1.*found -1, 2"):
        net_2_features.loss_and_gradients(np.zeros((3, 2)), [2, 0, -1])


def test_non_integer_labels_rejected(net_2_features):
    with pytest.raises(ValueError, match="non-integer value 0.5"):
        net_2_features.loss_and_gradients(np.zeros((2, 2)), [0.5, 1.0])
    with pytest.raises(ValueError, match="dtype <U1"):
        net_2_features.loss_and_gradients(np.zeros((2, 2)), ["a", "b"])


def test_whole_float_labels_accepted(net_2_features):
    loss_float, _ = net_2_features.loss_and_gradients(np.zeros((2, 2)), [0.0, 1.0])
    loss_int, _ = net_2_features.loss_and_gradients(np.zeros((2, 2)), [0, 1])
    assert loss_float == loss_int


def test_label_count_mismatch(net_2_features):
    with pytest.raises(ValueError, match="got 3 labels for 2 samples"):
        net_2_features.loss_and_gradients(np.zeros((2, 2)), [0, 1, 1])


@pytest.mark.parametrize("sizes", [[2, 0, 2], [0, 2], [2, -3, 2], [2, 2.5, 2]])
def test_layer_size_below_one_rejected(sizes):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        cr.Network(sizes)


def test_output_layer_needs_two_units():
    with pytest.raises(ValueError, match="at least 2 units"):
        cr.Network([3, 4, 1])


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="unknown activation 'relu6'.*leaky_relu"):
        cr.Network([2, 2, 2], activation="relu6")
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*cross_entropy"):
        cr.Network([2, 2], loss="hinge")
    with pytest.raises(ValueError, match="unknown weight initialisation 'orthogonal'.*xavier"):
        cr.Network([2, 2], weight_init="orthogonal")


def test_bad_weight_decay_and_dtype():
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0, got -0.1"):
        cr.Network([2, 2], weight_decay=-0.1)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', got 'int8'"):
        cr.Network([2, 2], dtype="int8")
