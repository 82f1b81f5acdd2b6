"""The per-epoch diagnostics: measure, unit_gradient_spread, the recorder and its files."""

import json

import numpy as np
import pytest
from conftest import require
from test_explain import small_network

import chainrule as cr
from chainrule import diagnostics


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
