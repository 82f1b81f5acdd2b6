"""Accuracy parity of chainrule.MLPClassifier with scikit-learn's MLPClassifier.

Both train with Adam on the same architecture, batch size, L2 strength (``alpha``) and
number of epochs, and scikit-learn runs every epoch (``tol=0``,
``n_iter_no_change=max_iter``, no early stopping). chainrule's mean test accuracy over
three seeds must be at most one percentage point below scikit-learn's.
"""

import warnings

import numpy as np
import pytest

from conftest import IN_CI

try:
    import sklearn  # noqa: F401
except ImportError as error:
    if IN_CI:
        raise
    pytest.skip(
        f"scikit-learn is not installed ({error}); install chainrule[test]",
        allow_module_level=True,
    )

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as ScikitLearnMLP
from threadpoolctl import threadpool_limits

import chainrule as cr

SEEDS = (0, 1, 2)
# The largest shortfall allowed, in accuracy (one percentage point).
MAX_SHORTFALL = 0.01


def digits_split():
    """Return scikit-learn's 8x8 digits scaled to [0, 1], 70 % train and 30 % test."""
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    return train_test_split(X, digits.target, test_size=0.3, stratify=digits.target,
                            random_state=0)


def fashion_split():
    """Return 10,000 Fashion-MNIST training images and the first 5,000 test images.

    Pixels are scaled to [0, 1]; the training images are a seeded random subset of the
    60,000 in the train split.
    """
    train_images, train_labels = cr.datasets.load("fashion_mnist", "train")
    test_images, test_labels = cr.datasets.load("fashion_mnist", "test")
    chosen = np.random.default_rng(0).choice(len(train_labels), size=10_000, replace=False)
    X_train = train_images[chosen].reshape(10_000, -1).astype(np.float32) / np.float32(255)
    X_test = test_images[:5_000].reshape(5_000, -1).astype(np.float32) / np.float32(255)
    return X_train, X_test, train_labels[chosen], test_labels[:5_000]


DATASETS = {
    # name: (loader, settings shared by both libraries, lowest acceptable accuracy)
    "digits": (digits_split, {"hidden_layer_sizes": (64,), "batch_size": 100,
                              "alpha": 1e-4, "max_iter": 100}, 0.95),
    "fashion_mnist": (fashion_split, {"hidden_layer_sizes": (64,), "batch_size": 100,
                                      "alpha": 1e-4, "max_iter": 20}, 0.82),
}


def mean_test_accuracy(estimator_class, settings, X_train, X_test, y_train, y_test) -> float:
    accuracies = []
    for seed in SEEDS:
        model = estimator_class(
            solver="adam",
            learning_rate_init=1e-3,
            tol=0.0,
            n_iter_no_change=settings["max_iter"],
            early_stopping=False,
            random_state=seed,
            **settings,
        )
        model.fit(X_train, y_train)
        assert model.n_iter_ == settings["max_iter"]
        accuracies.append(model.score(X_test, y_test))
    return float(np.mean(accuracies))


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_accuracy_parity_with_sklearn(dataset, record_property):
    loader, settings, floor = DATASETS[dataset]
    X_train, X_test, y_train, y_test = loader()

    # One BLAS thread for both libraries: with batches of 100 rows the products are small,
    # and on two cores thread synchronisation costs more than it saves.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = mean_test_accuracy(cr.MLPClassifier, settings, X_train, X_test, y_train, y_test)
        theirs = mean_test_accuracy(ScikitLearnMLP, settings, X_train, X_test, y_train, y_test)

    record_property("chainrule_accuracy", ours)
    record_property("sklearn_accuracy", theirs)
    print(f"{dataset}: chainrule {ours:.4f}, scikit-learn {theirs:.4f}")
    assert ours >= theirs - MAX_SHORTFALL
    assert ours > floor
