"""Metrics: hand-worked confusion matrices, scikit-learn as an oracle, and evaluate()."""

import json

import numpy as np
import pytest
from conftest import require

import chainrule as cr
from chainrule import metrics
from chainrule.preprocessing import LabelMapping, Preprocessor
from chainrule.training import Model

# Three classes, six examples:
# true      0 0 1 1 2 2
# predicted 0 1 1 1 0 2
# C (rows true, columns predicted) = [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
# precision per class = TP / column sum = [1/2, 2/3, 1/1]  -> macro 13/18
# recall per class    = TP / row sum    = [1/2, 2/2, 1/2]  -> macro 2/3
# F1 = 2TP / (row + column sum)         = [2/4, 4/5, 2/3]  -> macro 59/90
HAND_TRUE = [0, 0, 1, 1, 2, 2]
HAND_PRED = [0, 1, 1, 1, 0, 2]


def test_accuracy_hand_example():
    assert metrics.accuracy(HAND_TRUE, HAND_PRED) == pytest.approx(4 / 6, abs=1e-15)


def test_confusion_matrix_hand_example():
    confusion = metrics.confusion_matrix(HAND_TRUE, HAND_PRED)

    np.testing.assert_array_equal(confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert confusion.dtype == np.int64


def test_confusion_matrix_n_classes_pads():
    confusion = metrics.confusion_matrix([0, 1], [1, 1], n_classes=4)

    np.testing.assert_array_equal(
        confusion, [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    )


def test_macro_scores_hand_example():
    precision, recall, f1 = metrics.precision_recall_f1(HAND_TRUE, HAND_PRED)

    assert precision == pytest.approx(13 / 18, abs=1e-15)
    assert recall == pytest.approx(2 / 3, abs=1e-15)
    assert f1 == pytest.approx(59 / 90, abs=1e-15)


def test_macro_scores_class_never_predicted():
    # Class 1 is never predicted: its precision 0/0 counts as 0.
    # precision [2/4, 0] -> 1/4; recall [2/2, 0/2] -> 1/2; F1 [4/6, 0] -> 1/3.
    precision, recall, f1 = metrics.precision_recall_f1([0, 0, 1, 1], [0, 0, 0, 0])

    assert precision == pytest.approx(0.25, abs=1e-15)
    assert recall == pytest.approx(0.5, abs=1e-15)
    assert f1 == pytest.approx(1 / 3, abs=1e-15)


def test_macro_scores_skip_absent_class():
    # Class 1 occurs in neither list, so the means run over classes 0 and 2 only:
    # precision [1/1, 2/3] -> 5/6; recall [1/2, 2/2] -> 3/4; F1 [2/3, 4/5] -> 11/15.
    precision, recall, f1 = metrics.precision_recall_f1([0, 0, 2, 2], [0, 2, 2, 2])

    assert precision == pytest.approx(5 / 6, abs=1e-15)
    assert recall == pytest.approx(0.75, abs=1e-15)
    assert f1 == pytest.approx(11 / 15, abs=1e-15)


def test_per_class_accuracy_class_without_examples():
    confusion = metrics.confusion_matrix([0, 0, 2, 2], [0, 2, 2, 2], n_classes=3)

    np.testing.assert_allclose(metrics.per_class_accuracy(confusion), [0.5, 0.0, 1.0], atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_macro_scores_match_sklearn(seed):
    sklearn_metrics = require("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 7, size=200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 7, size=200))
    # Remove class 3 from the predictions and class 5 from both lists, so the
    # zero-division and absent-class rules are exercised.
    y_pred[y_pred == 3] = 4
    y_true[y_true == 5] = 6
    y_pred[y_pred == 5] = 6

    expected = sklearn_metrics.precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    precision, recall, f1 = metrics.precision_recall_f1(y_true, y_pred)

    assert precision == pytest.approx(expected[0], abs=1e-12)
    assert recall == pytest.approx(expected[1], abs=1e-12)
    assert f1 == pytest.approx(expected[2], abs=1e-12)


def test_confusion_matrix_matches_sklearn():
    sklearn_metrics = require("sklearn.metrics")
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 6, size=300)
    y_pred = rng.integers(0, 6, size=300)

    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred, n_classes=6),
        sklearn_metrics.confusion_matrix(y_true, y_pred, labels=list(range(6))),
    )


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([0, 1], [0], "same length"),
        ([], [], "empty"),
        ([0.5, 1.0], [0, 1], "integer"),
        ([[0, 1]], [[0, 1]], "1-D"),
        ([0, -1], [0, 0], ">= 0"),
    ],
)
def test_metrics_reject_bad_labels(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        metrics.accuracy(y_true, y_pred)


def test_confusion_matrix_rejects_index_beyond_n_classes():
    with pytest.raises(ValueError, match="n_classes is 2"):
        metrics.confusion_matrix([0, 2], [0, 1], n_classes=2)


def make_identity_network(weight_decay=0.0):
    """Softmax regression on 2 features whose logits equal the input: W = I, b = 0."""
    net = cr.Network([2, 2], weight_decay=weight_decay, dtype="float64")
    net.weights[0][...] = [[1.0, 0.0], [0.0, 1.0]]
    net.biases[0][...] = [0.0, 0.0]
    return net


# Logits equal the inputs. With y = [0, 1, 1]:
# row 0 logits [2, 0], true 0: loss log(1 + e^-2) = 0.1269280110429725, predicted 0
# row 1 logits [0, 1], true 1: loss log(1 + e^-1) = 0.31326168751822286, predicted 1
# row 2 logits [1, 1], true 1: loss log 2 = 0.6931471805599453, predicted 0 (argmax
#   takes the first of a tie)
# mean loss 0.3777789597070469; C = [[1, 0], [1, 1]]
IDENTITY_X = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
IDENTITY_Y = np.array([0, 1, 1])


def test_evaluate_network_hand_example():
    result = metrics.evaluate(make_identity_network(), IDENTITY_X, IDENTITY_Y)

    assert result["loss"] == pytest.approx(0.3777789597070469, abs=1e-15)
    assert result["accuracy"] == pytest.approx(2 / 3, abs=1e-15)
    np.testing.assert_array_equal(result["confusion_matrix"], [[1, 0], [1, 1]])
    np.testing.assert_allclose(result["per_class_accuracy"], [1.0, 0.5], atol=0)
    np.testing.assert_allclose(result["logits"], IDENTITY_X, atol=0)
    # precision [1/2, 1/1] -> 3/4; recall [1, 1/2] -> 3/4; F1 [2/3, 2/3] -> 2/3.
    assert result["precision"] == pytest.approx(0.75, abs=1e-15)
    assert result["recall"] == pytest.approx(0.75, abs=1e-15)
    assert result["f1"] == pytest.approx(2 / 3, abs=1e-15)


def test_evaluate_loss_excludes_l2_penalty():
    # λ = 0.5 adds λ/2 · (1 + 1) = 0.5 to net.loss, but evaluate reports the data loss.
    net = make_identity_network(weight_decay=0.5)

    result = metrics.evaluate(net, IDENTITY_X, IDENTITY_Y)

    assert result["loss"] == pytest.approx(0.3777789597070469, abs=1e-15)
    assert net.loss(IDENTITY_X, IDENTITY_Y) == pytest.approx(0.8777789597070469, abs=1e-15)


def test_evaluate_model_uses_preprocessing_and_mapping():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(40, 2, 2), dtype=np.uint8)
    labels = rng.choice([3, 7, 9], size=40)
    net = cr.Network([4, 5, 3], seed=1, dtype="float64")
    preprocessor = Preprocessor(dtype="float64").fit(raw)
    model = Model(network=net, preprocessor=preprocessor,
                  label_mapping=LabelMapping(np.array([3, 7, 9])))

    through_model = metrics.evaluate(model, raw, labels)
    # The same data prepared by hand: flatten, divide by 255, labels 3, 7, 9 -> 0, 1, 2.
    features = raw.reshape(40, 4).astype(np.float64) / 255.0
    indices = np.searchsorted([3, 7, 9], labels)
    direct = metrics.evaluate(net, features, indices)

    assert through_model["loss"] == pytest.approx(direct["loss"], abs=1e-15)
    assert through_model["accuracy"] == direct["accuracy"]
    np.testing.assert_array_equal(through_model["confusion_matrix"], direct["confusion_matrix"])
    np.testing.assert_allclose(through_model["logits"], direct["logits"], atol=1e-15)


def test_evaluate_rejects_other_objects():
    with pytest.raises(TypeError, match="Network"):
        metrics.evaluate(object(), IDENTITY_X, IDENTITY_Y)


def test_to_json_dict_drops_logits():
    result = metrics.evaluate(make_identity_network(), IDENTITY_X, IDENTITY_Y)

    converted = metrics.to_json_dict(result)

    assert "logits" not in converted
    assert json.loads(json.dumps(converted))["confusion_matrix"] == [[1, 0], [1, 1]]


def test_metrics_module_does_not_import_sklearn():
    import subprocess
    import sys

    code = "import sys, chainrule.metrics; print('sklearn' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()

    assert output == "False"
