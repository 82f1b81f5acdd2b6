"""explain, the per-epoch diagnostics, the comparison experiments, failures and surfaces."""

import json
import math

import numpy as np
import pytest
from conftest import require

import chainrule as cr
from chainrule import diagnostics
from chainrule.diagnostics import DataSubset


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


# ---------------------------------------------------------------------------------- explain


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_explain_output_gradient_is_prediction_minus_truth(activation):
    net = small_network(activation)
    x, label = example(), 2
    result = diagnostics.explain(net, x, label)
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
    result = diagnostics.explain(net, x, label)
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
    result = diagnostics.explain(net, x, label)
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
    np.testing.assert_array_equal(diagnostics.input_gradient(net, gradients), expected)


def test_explain_squared_error_applies_softmax_jacobian():
    net = small_network("tanh", loss="mean_squared_error")
    x, label = example(), 2
    result = diagnostics.explain(net, x, label)
    y_hat = numpy_forward(net, x)
    d = y_hat - np.array([0.0, 0.0, 1.0])
    jacobian = np.diag(y_hat) - np.outer(y_hat, y_hat)
    np.testing.assert_allclose(result.output_gradient.values, jacobian @ d, atol=1e-12)
    np.testing.assert_allclose(result.output_error.values, d, atol=1e-12)
    assert not np.allclose(result.output_gradient.values, d)
    assert "ŷ ⊙ (d − ŷ·d)" in result.format_text()


def test_explain_text_follows_course_order():
    net = small_network("relu", weight_decay=0.1)
    text = diagnostics.explain(net, example(), 1, index=7, source="toy test set").format_text()
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
    result = diagnostics.explain(net, [2.0, 0.0], 1)
    text = result.format_text(top=2)
    assert result.output_gradient.norm == pytest.approx(math.sqrt(2) * 0.8807970779778823, rel=1e-12)
    assert "shape (2,)" in text
    assert "norm 1.246" in text
    assert "[0] 0.8808" in text
    assert "[1] -0.8808" in text
    assert "shape (2, 2)" in text


def test_array_summary_largest_by_magnitude():
    summary = diagnostics.ArraySummary("∇", "", np.array([[0.1, -3.0], [2.0, 0.0]]))
    assert summary.largest(2) == [((0, 1), -3.0), ((1, 0), 2.0)]
    assert summary.norm == pytest.approx(math.sqrt(0.01 + 9.0 + 4.0))


def test_explain_model_applies_preprocessing_and_mapping():
    from chainrule.preprocessing import LabelMapping, Preprocessor
    from chainrule.training import Model

    net = cr.Network([4, 3, 2], activation="sigmoid", seed=2, dtype="float64")
    images = np.array([[[0, 255], [51, 102]], [[10, 20], [30, 40]]], dtype=np.uint8)
    model = Model(net, Preprocessor(scale=True, dtype="float64").fit(images),
                  LabelMapping(np.array([3, 7])), ["three", "seven"], {})
    result = diagnostics.explain(model, images[0], 7)
    assert result.label == 1
    np.testing.assert_allclose(result.forward[0].values, [0.0, 1.0, 0.2, 0.4])
    np.testing.assert_array_equal(result.raw_input, images[0])
    assert result.class_name(1) == "seven"


def test_explain_rejects_two_labels():
    with pytest.raises(ValueError, match="single label"):
        diagnostics.explain(small_network(), example(), [0, 1])


def test_explain_rejects_non_network():
    with pytest.raises(TypeError, match="Network"):
        diagnostics.explain("model", example(), 0)


# ----------------------------------------------------------------------------- diagnostics


def test_sigmoid_first_layer_gradient_smaller_than_relu():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 20)), rng.integers(0, 3, 64)
    norms = {}
    for activation in ("sigmoid", "relu"):
        net = cr.Network([20, 32, 32, 32, 32, 3], activation=activation, seed=0, dtype="float64")
        norms[activation] = diagnostics.measure(net, X, y)["weight_gradient_norm"]
    # Each sigmoid layer multiplies the backward signal by g' <= 1/4; measured ratio is 0.011.
    assert norms["sigmoid"][0] < 0.1 * norms["relu"][0]
    # Within the sigmoid stack the norm shrinks from the output towards the input.
    assert norms["sigmoid"][0] < norms["sigmoid"][-1]


def test_zero_init_keeps_unit_gradients_identical():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((48, 6)), rng.integers(0, 3, 48)
    net = cr.Network([6, 5, 4, 3], activation="sigmoid", weight_init="zeros", seed=0, dtype="float64")
    recorder = diagnostics.DiagnosticsRecorder(net, X, y)
    cr.Trainer(net, "sgd", epochs=4, batch_size=16, quiet=True, callbacks=[recorder]).fit(X, y)
    assert len(recorder.rows) == 5
    for row in recorder.rows:
        assert len(row["unit_gradient_spread"]) == 2
        assert max(row["unit_gradient_spread"]) < 1e-12
    # The gradients are not all zero: the units move, but all in step.
    assert recorder.rows[-1]["weight_gradient_norm"][1] > 1e-5
    assert np.ptp(net.weights[1], axis=0).max() == 0.0


def test_random_init_gives_units_different_gradients():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((48, 6)), rng.integers(0, 3, 48)
    net = cr.Network([6, 5, 4, 3], activation="sigmoid", seed=0, dtype="float64")
    spreads = diagnostics.measure(net, X, y)["unit_gradient_spread"]
    assert min(spreads) > 0.3


def test_large_negative_bias_makes_relu_units_dead():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((64, 10)), rng.integers(0, 3, 64)
    net = cr.Network([10, 16, 8, 3], activation="relu", seed=0, dtype="float64")
    assert diagnostics.measure(net, X, y)["dead_fraction"] == [0.0, 0.0]
    net.biases[0][...] = -100.0
    result = diagnostics.measure(net, X, y)
    assert result["dead_fraction"][0] == 1.0
    # With every unit of layer 1 dead, no gradient reaches W_1.
    assert result["weight_gradient_norm"][0] == 0.0


def test_dead_fraction_counts_units_off_everywhere():
    net = cr.Network([2, 4, 2], activation="relu", seed=0, dtype="float64")
    # Inputs are positive, so unit 3 (weights -1, -1) is off on every example. Unit 4
    # (weights 1, -1) is on for the first example (a = 0.5) and off for the second
    # (a = -2.8), so it is not dead: 1 of 4 units is.
    net.weights[0][...] = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]
    X = np.array([[1.0, 0.5], [0.2, 3.0]])
    assert diagnostics.measure(net, X, [0, 1])["dead_fraction"] == [0.25]


@pytest.mark.parametrize(
    "activation, pre_activations",
    [
        # sigmoid'(10) = 4.5e-5 < 0.05 * 0.25, sigmoid'(0.1) = 0.2494: one of two saturated.
        ("sigmoid", [10.0, 0.1]),
        # tanh'(3) = 1 - tanh(3)^2 = 0.0099 < 0.05, tanh'(0.5) = 0.786: one of two.
        ("tanh", [3.0, 0.5]),
    ],
)
def test_saturated_fraction_by_slope(activation, pre_activations):
    net = cr.Network([1, 2, 2], activation=activation, seed=0, dtype="float64")
    net.weights[0][...] = np.array(pre_activations)[:, None]
    result = diagnostics.measure(net, np.array([[1.0]]), [0])
    assert result["saturated_fraction"] == [0.5]
    assert result["dead_fraction"] == [None]


def test_unit_gradient_spread_literal():
    # Rows [1, 2] and [3, 4]: per-column variance 1, mean square (1 + 4 + 9 + 16) / 4 = 7.5,
    # so the spread is sqrt(1) / sqrt(7.5) = 0.3651483716701107.
    assert diagnostics.unit_gradient_spread([[1.0, 2.0], [3.0, 4.0]]) == pytest.approx(
        0.3651483716701107, rel=1e-12)
    assert diagnostics.unit_gradient_spread([[1.0, 2.0], [1.0, 2.0]]) == 0.0
    assert diagnostics.unit_gradient_spread(np.zeros((3, 2))) == 0.0


def test_unit_gradient_spread_rejects_vector():
    with pytest.raises(ValueError, match="2-D"):
        diagnostics.unit_gradient_spread([1.0, 2.0])


def test_gradient_norm_matches_torch_without_decay():
    torch = require("torch")
    net = small_network("tanh", weight_decay=0.5)
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    weights = [torch.tensor(w, requires_grad=True) for w in net.weights]
    biases = [torch.tensor(b, requires_grad=True) for b in net.biases]
    h = torch.tensor(X)
    for k in range(net.n_layers):
        a = h @ weights[k].T + biases[k]
        h = torch.tanh(a) if k < net.n_layers - 1 else a
    torch.nn.functional.cross_entropy(h, torch.tensor(y)).backward()
    result = diagnostics.measure(net, X, y)
    for k in range(net.n_layers):
        assert result["weight_gradient_norm"][k] == pytest.approx(
            float(weights[k].grad.norm()), rel=1e-10)
        assert result["bias_gradient_norm"][k] == pytest.approx(float(biases[k].grad.norm()), rel=1e-10)


def test_recorder_for_run_writes_files_each_epoch(tmp_path):
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((300, 6)).astype(np.float32), rng.integers(0, 3, 300)
    net = cr.Network([6, 5, 4, 3], activation=["relu", "tanh"], seed=0)
    recorder = diagnostics.recorder_for_run(tmp_path, net, X, y, rows=100, seed=1)
    assert recorder.X.shape == (100, 6)
    assert (tmp_path / "diagnostics.json").is_file()
    cr.Trainer(net, "adam", epochs=3, batch_size=32, quiet=True, callbacks=[recorder]).fit(X, y)

    record = diagnostics.load_diagnostics(tmp_path)
    assert [row["epoch"] for row in record["rows"]] == [0, 1, 2, 3]
    assert record["activations"] == ["relu", "tanh"]
    assert record["diagnostic_batch_size"] == 100
    assert record["rows"][0]["train_loss"] is None
    assert record["rows"][3]["train_loss"] == pytest.approx(net.history[2]["train_loss"])
    assert record["rows"][3]["dead_fraction"][1] is None
    assert record["rows"][3]["saturated_fraction"][0] is None

    lines = (tmp_path / "diagnostics.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert len(lines) == 5
    assert "weight_gradient_norm_3" in header
    assert "unit_gradient_spread_2" in header
    assert "unit_gradient_spread_3" not in header
    last = dict(zip(header, lines[-1].split(",")))
    assert float(last["weight_gradient_norm_1"]) == pytest.approx(
        record["rows"][3]["weight_gradient_norm"][0])
    assert last["dead_fraction_2"] == ""


def test_recorder_keeps_every_row_when_few(tmp_path):
    net = cr.Network([3, 2, 2], seed=0)
    recorder = diagnostics.recorder_for_run(tmp_path, net, np.ones((5, 3)), [0, 1, 0, 1, 0])
    assert recorder.X.shape == (5, 3)


def test_recorder_rejects_mismatched_rows(tmp_path):
    with pytest.raises(ValueError, match="same number of rows"):
        diagnostics.recorder_for_run(tmp_path, cr.Network([3, 2, 2]), np.ones((5, 3)), [0, 1])


def test_load_diagnostics_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        diagnostics.load_diagnostics(tmp_path)


def test_load_diagnostics_foreign_file(tmp_path):
    (tmp_path / "diagnostics.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="not a chainrule diagnostics file"):
        diagnostics.load_diagnostics(tmp_path)


# ------------------------------------------------------------------------------ experiments


def synthetic_subset(n_train=240, n_test=90, features=12, classes=3, seed=0):
    """Linearly separable-ish classes: each class shifts a different block of features."""
    rng = np.random.default_rng(seed)

    def draw(n):
        labels = np.arange(n) % classes
        X = rng.standard_normal((n, features)).astype(np.float32) * 0.5
        for c in range(classes):
            X[labels == c, c * 4:(c + 1) * 4] += 1.5
        return X, labels

    X_train, y_train = draw(n_train)
    X_test, y_test = draw(n_test)
    return DataSubset(X_train, y_train, X_test, y_test, X_test.reshape(n_test, 3, 4),
                      [f"class {c}" for c in range(classes)], "synthetic")


def test_compare_losses_same_start_different_runs():
    data = synthetic_subset()
    results = diagnostics.compare_losses(data, hidden_sizes=[8], epochs=3, batch_size=32,
                                         learning_rate=0.05)
    assert list(results) == ["cross_entropy", "mean_squared_error"]
    ce, mse = results["cross_entropy"], results["mean_squared_error"]
    assert [row["epoch"] for row in ce] == [0, 1, 2, 3]
    # Same seed: identical initial weights, hence identical predictions before training.
    assert ce[0]["test_accuracy"] == mse[0]["test_accuracy"]
    assert ce[0]["train_loss"] != mse[0]["train_loss"]
    assert ce[-1]["train_accuracy"] > 0.8


def test_compare_optimizers_uses_given_rates():
    data = synthetic_subset()
    results = diagnostics.compare_optimizers(
        data, optimizers=["sgd", "adam"], learning_rates={"sgd": 1e-9}, hidden_sizes=[8],
        epochs=2, batch_size=32,
    )
    assert list(results) == ["sgd", "adam"]
    # A learning rate of 1e-9 leaves the weights where they started.
    assert results["sgd"][-1]["train_loss"] == pytest.approx(results["sgd"][0]["train_loss"], rel=1e-6)
    assert results["adam"][-1]["train_loss"] < results["adam"][0]["train_loss"]


def test_accuracy_curves_rows_measured_each_epoch():
    data = synthetic_subset()
    lines = []
    rows = diagnostics.accuracy_curves(data, hidden_sizes=[8], epochs=2, batch_size=32,
                                       log=lines.append)
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert set(rows[0]) == {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    assert len(lines) == 2


def test_compare_activations_records_each_layer():
    data = synthetic_subset()
    records = diagnostics.compare_activations(data, hidden_sizes=[8, 8, 8], epochs=1,
                                              batch_size=32, diagnostic_rows=60)
    assert list(records) == ["sigmoid", "relu"]
    sigmoid = records["sigmoid"]
    assert sigmoid["diagnostic_batch_size"] == 60
    assert len(sigmoid["rows"]) == 2
    assert len(sigmoid["rows"][0]["weight_gradient_norm"]) == 4


def test_load_subset_stratified_and_scaled():
    data = diagnostics.load_subset("fashion_mnist", train_size=200, test_size=100, seed=0)
    assert data.X_train.shape == (200, 784)
    assert data.raw_test.shape == (100, 28, 28)
    assert np.bincount(data.y_train, minlength=10).tolist() == [20] * 10
    assert np.bincount(data.y_test, minlength=10).tolist() == [10] * 10
    assert float(data.X_train.max()) <= 1.0
    assert data.class_names[9] == "Ankle boot"


# --------------------------------------------------------------------------------- failures


def test_most_confident_failures_order():
    net = cr.Network([2, 2], seed=0, dtype="float64")
    net.weights[0][...] = np.eye(2)
    # Logits are the inputs; ŷ of the larger one is 1 / (1 + e^-gap):
    # gap 3 -> 0.9525741268224334, gap 1 -> 0.7310585786300049, gap 2 -> 0.8807970779778823.
    X = np.array([[3.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 5.0]])
    y = np.array([1, 0, 1, 1])
    failures = diagnostics.most_confident_failures(net, X, y, count=5)
    assert [f.index for f in failures] == [0, 2, 1]
    assert failures[0].probability == pytest.approx(0.9525741268224334, rel=1e-12)
    assert failures[0].label_probability == pytest.approx(1 - 0.9525741268224334, rel=1e-10)
    assert (failures[2].label, failures[2].predicted) == (0, 1)
    assert len(diagnostics.most_confident_failures(net, X, y, count=1)) == 1


# --------------------------------------------------------------------------------- surfaces


@pytest.mark.parametrize("name", sorted(diagnostics.SURFACES))
def test_surface_gradient_matches_central_differences(name):
    surface = diagnostics.SURFACES[name]
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
    paths = diagnostics.optimizer_paths("bowl", ["sgd"], steps=2, learning_rates={"sgd": 0.1})
    np.testing.assert_allclose(paths["sgd"], [[-4.0, 1.5], [-3.6, 0.0], [-3.24, 0.0]], atol=1e-15)


def test_optimizer_paths_every_optimizer_reaches_bowl_minimum():
    paths = diagnostics.optimizer_paths("bowl")
    assert list(paths) == cr.optimizers.names()
    for name, points in paths.items():
        assert points.shape == (61, 2)
        assert np.linalg.norm(points[-1]) < 0.5, name


def test_optimizer_paths_unknown_surface():
    with pytest.raises(ValueError, match="unknown surface"):
        diagnostics.optimizer_paths("volcano")
