"""Tests of chainrule.MLPClassifier, the scikit-learn estimator.

scikit-learn is the oracle here: its estimator checks, its own MLPClassifier trained from
the same starting weights, and its metrics. Hand-worked numbers carry their working in a
comment.
"""

import pickle
import subprocess
import sys
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

from sklearn.base import clone
from sklearn.datasets import load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier as ScikitLearnMLP
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import chainrule as cr

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def blobs(n_samples=120, centers=3, seed=1):
    X, y = make_blobs(n_samples=n_samples, centers=centers, cluster_std=1.0, random_state=seed)
    return StandardScaler().fit_transform(X), y


# ---------------------------------------------------------------------- scikit-learn's checks


# Every check runs, and none is marked as an expected failure. The array API check skips
# itself unless SCIPY_ARRAY_API is set, which it reads when it runs. The pandas part of
# check_classifier_data_not_an_array skips itself when pandas is missing (it passes with
# pandas 3.1 installed).
@parametrize_with_checks([cr.MLPClassifier()])
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


def test_import_chainrule_skips_sklearn():
    code = (
        "import sys, chainrule; "
        "chainrule.__version__; "
        "print('sklearn' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_lazy_name_is_estimator():
    from chainrule.estimator import MLPClassifier

    assert cr.MLPClassifier is MLPClassifier


# ---------------------------------------------------------------------- scikit-learn tools


def test_pipeline_with_standard_scaler():
    X, y = make_blobs(n_samples=150, centers=3, random_state=1)
    X = X * 50.0 + 300.0  # far from zero mean and unit variance, so scaling matters
    pipeline = make_pipeline(
        StandardScaler(),
        cr.MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0),
    )
    pipeline.fit(X, y)
    predictions = pipeline.predict(X)
    assert set(predictions) <= set(y)
    assert accuracy_score(y, predictions) > 0.95


def test_grid_search_two_jobs():
    X, y = blobs()
    search = GridSearchCV(
        cr.MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=100,
                         random_state=0),
        {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(4,), (8,)]},
        cv=3,
        n_jobs=2,
    )
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["alpha"] in (1e-4, 1e-1)
    assert search.best_score_ > 0.9
    assert isinstance(search.best_estimator_, cr.MLPClassifier)


def test_cross_val_score_three_folds():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0)
    scores = cross_val_score(model, X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.min() > 0.9


# ---------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    "X, y, expected_classes",
    [
        ([[0.0], [1.0], [2.0], [3.0]], [1, 2, 1, 2], [1, 2]),
        ([[0.0], [1.0], [2.0], [3.0]], ["cat", "dog", "cat", "dog"], ["cat", "dog"]),
        ([[0.0], [1.0], [2.0]], [3, 7, 11], [3, 7, 11]),
    ],
    ids=["one_based", "strings", "gaps"],
)
def test_labels_not_zero_based(X, y, expected_classes):
    model = cr.MLPClassifier(random_state=0).fit(X, y)
    predictions = model.predict(X)
    probabilities = model.predict_proba(X)

    assert model.classes_.tolist() == expected_classes
    assert set(predictions.tolist()) <= set(expected_classes)
    assert predictions.dtype == np.asarray(y).dtype
    assert probabilities.shape == (len(X), len(expected_classes))
    assert model.coefs_[-1].shape[1] == len(expected_classes)
    assert model.n_outputs_ == len(expected_classes)


def test_proba_columns_follow_classes():
    X = [[0.0], [0.1], [5.0], [5.1]]
    y = ["dog", "dog", "cat", "cat"]  # sorted classes_: cat, dog
    model = cr.MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.05,
                             random_state=0).fit(X, y)
    probabilities = model.predict_proba([[0.0], [5.0]])
    assert model.classes_.tolist() == ["cat", "dog"]
    assert probabilities[0, 1] > 0.9  # x = 0 is a dog, column 1
    assert probabilities[1, 0] > 0.9  # x = 5 is a cat, column 0


def test_two_classes_two_columns():
    X, y = blobs(centers=2)
    probabilities = cr.MLPClassifier(random_state=0).fit(X, y).predict_proba(X)
    assert probabilities.shape == (len(X), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)


def test_one_class_names_it():
    with pytest.raises(ValueError, match=r"found one class \(5\); at least 2 are needed"):
        cr.MLPClassifier().fit([[0.0], [1.0]], [5, 5])


def test_one_class_string_names_it():
    with pytest.raises(ValueError, match=r"found one class \('cat'\)"):
        cr.MLPClassifier().fit([[0.0], [1.0]], np.array(["cat", "cat"], dtype=object))


def test_continuous_labels_rejected():
    with pytest.raises(ValueError, match="Unknown label type"):
        cr.MLPClassifier().fit([[0.0], [1.0], [2.0]], [0.5, 1.5, 2.25])


# ---------------------------------------------------------------------- input validation


def fitted_on_two_features():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    return cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(
        X, [0, 1, 0, 1]
    )


def test_predict_one_dimensional_hint():
    model = fitted_on_two_features()
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        model.predict(np.array([0.5, -0.2]))


def test_predict_empty_rejected():
    model = fitted_on_two_features()
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        model.predict(np.empty((0, 2)))


def test_predict_wrong_feature_count():
    model = fitted_on_two_features()
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 2"):
        model.predict(np.zeros((1, 3)))


def test_fit_empty_rejected():
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        cr.MLPClassifier().fit(np.empty((0, 2)), [])


def test_uint8_input_matches_float64():
    X = np.array([[0, 255], [255, 0], [128, 64]], dtype=np.uint8)
    X_before = X.copy()
    y = [0, 1, 0]
    from_uint8 = cr.MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=3)
    from_float = clone(from_uint8)

    from_uint8.fit(X, y)
    from_float.fit(X.astype(np.float64), y)

    np.testing.assert_array_equal(from_uint8.predict_proba(X),
                                  from_float.predict_proba(X.astype(np.float64)))
    np.testing.assert_array_equal(from_uint8.predict(X), from_float.predict(X))
    assert X.dtype == np.uint8
    np.testing.assert_array_equal(X, X_before)


def test_float32_stays_float32():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    model.fit(X.astype(np.float32), y)
    assert model.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert model.coefs_[0].dtype == np.float32


def test_integer_input_trains_float64():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    model.fit((X * 10).astype(np.int64), y)
    assert model.coefs_[0].dtype == np.float64


# ---------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "parameters, name",
    [
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": "100"}, "hidden_layer_sizes"),
        ({"solver": "lbfgs"}, "solver"),
        ({"alpha": -1.0}, "alpha"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_iter": 0}, "max_iter"),
        ({"n_iter_no_change": 0}, "n_iter_no_change"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"beta_1": 1.0}, "beta_1"),
        ({"momentum": -0.1}, "momentum"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"activation": "softsign"}, "activation"),
        ({"weight_init": "orthogonal"}, "initialisation"),
        ({"shuffle": "yes"}, "shuffle"),
    ],
)
def test_invalid_parameter_named(parameters, name):
    model = cr.MLPClassifier(**parameters)  # the constructor never validates
    with pytest.raises(ValueError, match=name):
        model.fit([[0.0], [1.0]], [0, 1])


def test_empty_hidden_is_softmax_regression():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(), max_iter=50, random_state=0).fit(X, y)
    assert [c.shape for c in model.coefs_] == [(2, 3)]
    assert model.n_layers_ == 2


def test_alpha_becomes_weight_decay():
    X, y = blobs(n_samples=50)
    model = cr.MLPClassifier(hidden_layer_sizes=(3,), alpha=0.2, batch_size=20, max_iter=1,
                             random_state=0).fit(X, y)
    # λ = alpha / batch_size = 0.2 / 20 = 0.01
    assert model.network_.weight_decay == pytest.approx(0.01, rel=1e-12)


def test_auto_batch_is_whole_small_set():
    X, y = blobs(n_samples=50)
    model = cr.MLPClassifier(hidden_layer_sizes=(3,), alpha=0.5, max_iter=1,
                             random_state=0).fit(X, y)
    # batch_size="auto" = min(200, 50) = 50, so λ = 0.5 / 50 = 0.01
    assert model.network_.weight_decay == pytest.approx(0.01, rel=1e-12)


def test_batch_size_clipped_with_warning():
    X, y = blobs(n_samples=30)
    model = cr.MLPClassifier(hidden_layer_sizes=(3,), batch_size=100, max_iter=1, random_state=0)
    with pytest.warns(UserWarning, match="batch_size=100 is larger than the 30 training rows"):
        model.fit(X, y)


# ---------------------------------------------- training compared with scikit-learn


def start_from_same_weights(solver_parameters, sklearn_parameters):
    """Train one epoch from identical weights in chainrule and scikit-learn.

    Returns both models. 12 rows in 3 batches of 4 and no shuffling, so both take the
    same three steps, and the batches have equal size, so scikit-learn's per-batch
    ``alpha/m`` equals chainrule's λ exactly.
    """
    rng = np.random.default_rng(5)
    X = rng.normal(size=(12, 3))
    y = np.array([0, 1, 2] * 4)
    common = {"hidden_layer_sizes": (4,), "alpha": 0.3, "batch_size": 4, "max_iter": 1,
              "shuffle": False, "learning_rate_init": 0.05}

    ours = cr.MLPClassifier(random_state=0, **common, **solver_parameters).fit(X, y)
    start_coefs = [c.copy() for c in ours.coefs_]
    start_intercepts = [b.copy() for b in ours.intercepts_]
    ours.set_params(warm_start=True).fit(X, y)

    theirs = ScikitLearnMLP(random_state=0, warm_start=True, **common, **sklearn_parameters)
    theirs.fit(X, y)  # sets up the label binarizer and shapes; its weights are replaced
    theirs.coefs_ = start_coefs
    theirs.intercepts_ = start_intercepts
    theirs.fit(X, y)
    return ours, theirs


@pytest.mark.parametrize(
    "ours, theirs, rtol",
    [
        ({"solver": "sgd"},
         {"solver": "sgd", "momentum": 0.0, "nesterovs_momentum": False}, 1e-10),
        ({"solver": "momentum", "momentum": 0.9},
         {"solver": "sgd", "momentum": 0.9, "nesterovs_momentum": False}, 1e-10),
        # scikit-learn adds ε to the uncorrected √v; with ε = 1e-12 the two Adam forms
        # agree to far below the tolerance.
        ({"solver": "adam", "epsilon": 1e-12}, {"solver": "adam", "epsilon": 1e-12}, 1e-7),
    ],
    ids=["sgd", "momentum", "adam"],
)
def test_epoch_matches_sklearn(ours, theirs, rtol):
    ours, theirs = start_from_same_weights(ours, theirs)
    for layer in range(2):
        np.testing.assert_allclose(ours.coefs_[layer], theirs.coefs_[layer], rtol=rtol,
                                   atol=1e-12)
        np.testing.assert_allclose(ours.intercepts_[layer], theirs.intercepts_[layer],
                                   rtol=rtol, atol=1e-12)


def test_sgd_differs_from_nesterov():
    # scikit-learn's solver="sgd" default (Nesterov momentum 0.9) is not chainrule's "sgd".
    ours, theirs = start_from_same_weights({"solver": "sgd"}, {"solver": "sgd"})
    assert not np.allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-3)


@pytest.mark.parametrize("solver", ["sgd", "momentum", "nag", "rmsprop", "adam", "nadam"])
def test_every_solver_learns_blobs(solver):
    X, y = blobs()
    learning_rate = 0.1 if solver in ("sgd", "momentum", "nag") else 0.01
    model = cr.MLPClassifier(hidden_layer_sizes=(8,), solver=solver,
                             learning_rate_init=learning_rate, max_iter=50, random_state=0)
    assert model.fit(X, y).score(X, y) > 0.9


def test_loss_includes_l2_term():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, 3))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    alpha = 1.0
    # A learning rate of 1e-12 leaves the weights at their start to ~1e-12, so the loss
    # recorded during the epoch is the loss of the final weights.
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=1e-12,
                             alpha=alpha, batch_size=5, max_iter=1, shuffle=False,
                             random_state=0).fit(X, y)

    # Forward pass in float64, written out here: relu hidden layer, softmax output.
    W1, W2 = model.coefs_
    b1, b2 = model.intercepts_
    logits = np.maximum(X @ W1 + b1, 0.0) @ W2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    data_loss = -log_probabilities[np.arange(10), y].mean()
    # scikit-learn: each of the 2 batches of 5 adds alpha/(2·5)·Σ‖W‖², weighted by its
    # 5 rows and divided by 10 rows: alpha/2 · Σ‖W‖² · 2 / 10.
    l2_term = 0.5 * alpha * (np.sum(W1**2) + np.sum(W2**2)) * 2 / 10

    assert model.loss_ == pytest.approx(data_loss + l2_term, rel=1e-9)
    assert l2_term > 0.1  # large enough that leaving it out would fail the line above
    assert model.loss_curve_ == [model.loss_]
    assert model.best_loss_ == model.loss_


def test_stopping_rule_counts_like_sklearn():
    X, y = blobs()
    settings = {"hidden_layer_sizes": (4,), "tol": 10.0, "n_iter_no_change": 3,
                "max_iter": 100, "random_state": 0}
    # Epoch 1 sets the best loss (count 0). No later epoch lowers it by tol = 10, so
    # epochs 2, 3, 4, 5 raise the count to 1, 2, 3, 4, and 4 > n_iter_no_change = 3
    # stops training after epoch 5.
    ours = cr.MLPClassifier(**settings).fit(X, y)
    theirs = ScikitLearnMLP(**settings).fit(X, y)
    assert ours.n_iter_ == 5
    assert theirs.n_iter_ == 5
    assert len(ours.loss_curve_) == 5


def test_max_iter_warns_convergence():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        model.fit(X, y)
    assert model.n_iter_ == 2


def test_stopped_early_no_warning():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), tol=10.0, n_iter_no_change=1,
                             random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.fit(X, y)
    assert model.n_iter_ == 3


def test_verbose_prints_epoch_lines(capsys):
    X, y = blobs()
    cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]


# ---------------------------------------------------------------------- early stopping


def test_early_stopping_split_stratified():
    X = np.arange(20.0).reshape(-1, 1)
    y = np.array([0] * 10 + [1] * 10)
    settings = {"early_stopping": True, "validation_fraction": 0.2, "random_state": 0,
                "hidden_layer_sizes": (4,), "max_iter": 5}
    first = cr.MLPClassifier(**settings).fit(X, y)
    second = cr.MLPClassifier(**settings).fit(X, y)

    validation = first.validation_indices_
    training = np.setdiff1d(np.arange(20), validation)
    assert len(validation) == 4
    assert np.bincount(y[validation]).tolist() == [2, 2]
    assert np.bincount(y[training]).tolist() == [8, 8]
    np.testing.assert_array_equal(second.validation_indices_, validation)


def test_early_stopping_tiny_class_rejected():
    X = [[0.0], [1.0], [2.0], [3.0], [4.0]]
    model = cr.MLPClassifier(early_stopping=True, validation_fraction=0.2, random_state=0)
    with pytest.raises(ValueError, match="stratified validation split.*at least 2 members"):
        model.fit(X, [0, 0, 0, 0, 1])


def test_early_stopping_two_rows_rejected():
    model = cr.MLPClassifier(early_stopping=True, random_state=0)
    with pytest.raises(ValueError, match="at least 2 members"):
        model.fit([[0.0], [1.0]], [0, 1])


def test_early_stopping_keeps_best_epoch():
    X, y = blobs(n_samples=200, seed=3)
    model = cr.MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True,
                             validation_fraction=0.25, n_iter_no_change=2, max_iter=60,
                             learning_rate_init=0.01, random_state=0).fit(X, y)
    validation = model.validation_indices_

    assert model.best_loss_ is None
    assert len(model.validation_scores_) == model.n_iter_
    assert len(model.loss_curve_) == model.n_iter_
    assert model.best_validation_score_ in model.validation_scores_
    assert accuracy_score(y[validation], model.predict(X[validation])) == pytest.approx(
        model.best_validation_score_, abs=1e-12
    )


def test_no_early_stopping_no_scores():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    assert model.validation_scores_ is None
    assert model.best_validation_score_ is None
    assert model.best_loss_ == min(model.loss_curve_)


# ---------------------------------------------------------------------- partial_fit and warm_start


def test_partial_fit_needs_classes_first():
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        cr.MLPClassifier().partial_fit([[0.0], [1.0]], [0, 1])


def test_partial_fit_unknown_label_named():
    model = cr.MLPClassifier(hidden_layer_sizes=(3,), random_state=0)
    model.partial_fit([[0.0], [1.0]], ["cat", "dog"], classes=["cat", "dog"])
    with pytest.raises(ValueError, match=r"label\(s\) \['bird'\] that are not among"):
        model.partial_fit([[0.0], [1.0]], ["cat", "bird"])


def test_partial_fit_classes_cannot_change():
    model = cr.MLPClassifier(hidden_layer_sizes=(3,), random_state=0)
    model.partial_fit([[0.0], [1.0]], [0, 1], classes=[0, 1])
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2\] differs"):
        model.partial_fit([[0.0], [1.0]], [0, 1], classes=[0, 1, 2])


def test_partial_fit_subset_of_classes():
    model = cr.MLPClassifier(hidden_layer_sizes=(3,), random_state=0)
    model.partial_fit([[0.0], [1.0]], [0, 0], classes=[0, 1, 2])
    assert model.classes_.tolist() == [0, 1, 2]
    assert model.predict_proba([[0.5]]).shape == (1, 3)
    assert model.validation_scores_ is None
    assert model.validation_indices_ is None


def test_partial_fit_one_class_rejected():
    with pytest.raises(ValueError, match="found one class"):
        cr.MLPClassifier().partial_fit([[0.0]], [4], classes=[4])


def test_partial_fit_empty_classes_rejected():
    with pytest.raises(ValueError, match="classes is empty"):
        cr.MLPClassifier().partial_fit([[0.0]], [4], classes=[])


def test_partial_fit_rejects_early_stopping():
    model = cr.MLPClassifier(early_stopping=True)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        model.partial_fit([[0.0], [1.0]], [0, 1], classes=[0, 1])


def test_partial_fit_continues_optimizer():
    X, y = blobs(n_samples=90)
    settings = {"hidden_layer_sizes": (5,), "batch_size": 30, "shuffle": False,
                "random_state": 0}
    # Two one-epoch calls equal one two-epoch fit only if Adam's moments and step count
    # carry over between the calls. A restart would redo the bias correction of step 1.
    stepwise = cr.MLPClassifier(**settings)
    stepwise.partial_fit(X, y, classes=[0, 1, 2])
    stepwise.partial_fit(X, y)
    at_once = cr.MLPClassifier(max_iter=2, **settings).fit(X, y)

    for layer in range(2):
        np.testing.assert_allclose(stepwise.coefs_[layer], at_once.coefs_[layer], rtol=1e-12)
    assert stepwise.n_iter_ == 1
    assert stepwise.t_ == 180
    assert len(stepwise.loss_curve_) == 2
    np.testing.assert_allclose(stepwise.loss_curve_, at_once.loss_curve_, rtol=1e-12)


def test_warm_start_other_classes_untouched():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    coefs_before = [c.copy() for c in model.coefs_]
    curve_before = list(model.loss_curve_)

    model.set_params(warm_start=True)
    with pytest.raises(ValueError, match=r"it had \[0, 1, 2\], y has \[0, 1\]"):
        model.fit(X[y < 2], y[y < 2])

    assert model.classes_.tolist() == [0, 1, 2]
    assert model.loss_curve_ == curve_before
    for before, after in zip(coefs_before, model.coefs_):
        np.testing.assert_array_equal(after, before)


def test_diverged_warm_start_untouched():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), activation="identity", max_iter=3,
                             random_state=0).fit(X, y)
    coefs_before = [c.copy() for c in model.coefs_]

    # Inputs of 1e30 and a step of 1e10 drive the weights to infinity within a few steps
    # (the identity activation has no dead units to stop the growth).
    model.set_params(warm_start=True, solver="sgd", learning_rate_init=1e10, max_iter=20)
    with pytest.raises(cr.training.TrainingDiverged):
        model.fit(X * 1e30, y)

    assert len(model.loss_curve_) == 3
    for before, after in zip(coefs_before, model.coefs_):
        np.testing.assert_array_equal(after, before)


def test_warm_start_continues_curve():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    first_curve = list(model.loss_curve_)
    model.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert model.loss_curve_[:3] == first_curve
    assert len(model.loss_curve_) == 5
    assert model.n_iter_ == 2


def test_warm_start_changed_architecture():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    model.set_params(warm_start=True, hidden_layer_sizes=(6,))
    with pytest.raises(ValueError, match="layer sizes from"):
        model.fit(X, y)


def test_refit_without_warm_start_restarts():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    model.fit(X[y < 2], y[y < 2])
    assert model.classes_.tolist() == [0, 1]
    assert len(model.loss_curve_) == 2


# ---------------------------------------------------------------------- randomness and state


def test_int_random_state_repeats():
    X, y = blobs()
    first = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=7).fit(X, y)
    second = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=7).fit(X, y)
    np.testing.assert_array_equal(first.coefs_[0], second.coefs_[0])


def test_randomstate_instance_advances():
    X, y = blobs()
    generator = np.random.RandomState(7)
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=generator)
    first = model.fit(X, y).coefs_[0].copy()
    second = model.fit(X, y).coefs_[0].copy()
    assert not np.array_equal(first, second)
    assert model.random_state is generator


def test_no_generator_stored():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=None).fit(X, y)
    stored = [
        name for name, value in vars(model).items()
        if isinstance(value, (np.random.RandomState, np.random.Generator))
    ]
    assert stored == []


def test_pickle_fitted_round_trip():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    # The loaded layer arrays must again be views of the flat parameters, or training
    # would update one copy and predict from the other.
    assert np.shares_memory(loaded.coefs_[0], loaded.network_.parameters)


def test_clone_fitted_unfitted():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "coefs_")


def test_coefs_are_live_views():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    assert model.coefs_[0].shape == (2, 4)
    np.testing.assert_array_equal(model.coefs_[0], model.network_.weights[0].T)
    model.coefs_[1][...] = 0.0
    model.intercepts_[1][...] = 0.0
    # Zero output weights and biases: every logit is 0, so each class gets 1/3.
    np.testing.assert_allclose(model.predict_proba(X[:2]), np.full((2, 3), 1 / 3), rtol=1e-12)


def test_log_proba_is_log_of_proba():
    X, y = blobs()
    model = cr.MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, y)
    np.testing.assert_allclose(model.predict_log_proba(X), np.log(model.predict_proba(X)),
                               rtol=1e-10, atol=1e-12)


def test_iris_accuracy_default():
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = cr.MLPClassifier(random_state=0).fit(X, y)
    assert model.score(X, y) > 0.95
