"""The comparison experiments on a synthetic subset, and load_subset on Fashion-MNIST."""

import numpy as np
import pytest

from chainrule import comparisons
from chainrule.comparisons import DataSubset


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
    results = comparisons.compare_losses(data, hidden_sizes=[8], epochs=3, batch_size=32,
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
    results = comparisons.compare_optimizers(
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
    rows = comparisons.accuracy_curves(data, hidden_sizes=[8], epochs=2, batch_size=32,
                                       log=lines.append)
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert set(rows[0]) == {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    assert len(lines) == 2


def test_compare_activations_records_each_layer():
    data = synthetic_subset()
    records = comparisons.compare_activations(data, hidden_sizes=[8, 8, 8], epochs=1,
                                              batch_size=32, diagnostic_rows=60)
    assert list(records) == ["sigmoid", "relu"]
    sigmoid = records["sigmoid"]
    assert sigmoid["diagnostic_batch_size"] == 60
    assert len(sigmoid["rows"]) == 2
    assert len(sigmoid["rows"][0]["weight_gradient_norm"]) == 4


def test_load_subset_stratified_and_scaled():
    data = comparisons.load_subset("fashion_mnist", train_size=200, test_size=100, seed=0)
    assert data.X_train.shape == (200, 784)
    assert data.raw_test.shape == (100, 28, 28)
    assert np.bincount(data.y_train, minlength=10).tolist() == [20] * 10
    assert np.bincount(data.y_test, minlength=10).tolist() == [10] * 10
    assert float(data.X_train.max()) <= 1.0
    assert data.class_names[9] == "Ankle boot"
