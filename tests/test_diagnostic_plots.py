"""Every diagnostic figure: a PNG of the right size, not blank, with the expected series drawn."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import comparisons, diagnostic_plots, diagnostics, surfaces
from chainrule.comparisons import DataSubset
from chainrule.explanation import Failure, explain

DPI = 40


def check_png(path, width_inches, height_inches):
    """Open the PNG and check its pixel size and that it is not one flat colour."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(width_inches * DPI), round(height_inches * DPI))
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.std() > 0


def axes_titled(figure, text):
    matches = [axes for axes in figure.axes if text in axes.get_title()]
    assert len(matches) == 1, [axes.get_title() for axes in figure.axes]
    return matches[0]


def line_labels(axes):
    return [line.get_label() for line in axes.get_lines()]


def line_named(axes, label):
    lines = [line for line in axes.get_lines() if line.get_label() == label]
    assert len(lines) == 1, line_labels(axes)
    return lines[0]


def trained_record():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((120, 6)), rng.integers(0, 3, 120)
    net = cr.Network([6, 5, 4, 3], activation=["relu", "sigmoid"], seed=0, dtype="float64")
    recorder = diagnostics.DiagnosticsRecorder(net, X[:50], y[:50])
    cr.Trainer(net, "adam", epochs=2, batch_size=32, quiet=True, callbacks=[recorder]).fit(X, y)
    return recorder


def test_explanation_figure(tmp_path):
    net = cr.Network([16, 6, 4], activation="tanh", seed=1, dtype="float64")
    image = np.random.default_rng(1).uniform(0, 1, (4, 4))
    explanation = explain(net, image, 2, index=5, class_names=["a", "b", "c", "d"])
    path = tmp_path / "explain-5.png"
    figure = diagnostic_plots.plot_explanation(explanation, path, dpi=DPI)
    check_png(path, 11.0, 8.0)

    input_axes = axes_titled(figure, "input")
    np.testing.assert_array_equal(input_axes.get_images()[0].get_array(), image)
    saliency_axes = axes_titled(figure, r"\nabla_{h_0}")
    np.testing.assert_allclose(saliency_axes.get_images()[0].get_array(),
                               explanation.layers[-1].below_activation.values.reshape(4, 4))

    output_axes = axes_titled(figure, "output")
    bars = {container.get_label(): [patch.get_height() for patch in container]
            for container in output_axes.containers}
    np.testing.assert_allclose(bars[r"$\hat{y}$"], explanation.probabilities.values)
    np.testing.assert_allclose(bars[r"$\hat{y} - e(\ell)$"], explanation.output_error.values)
    np.testing.assert_array_equal(line_named(output_axes, r"$e(\ell)$").get_ydata(), [0, 0, 1, 0])

    walk_axes = axes_titled(figure, "backward walk")
    weights = line_named(walk_axes, r"$\|\nabla_{W_k} L\|$")
    np.testing.assert_array_equal(weights.get_xdata(), [2, 1])
    np.testing.assert_allclose(weights.get_ydata(), [step.weights.norm for step in explanation.layers])
    assert len(walk_axes.get_lines()) == 4


def test_explanation_figure_flat_input(tmp_path):
    net = cr.Network([5, 3], seed=0, dtype="float64")
    explanation = explain(net, np.arange(5.0), 1)
    path = tmp_path / "explain.png"
    figure = diagnostic_plots.plot_explanation(explanation, path, dpi=DPI)
    check_png(path, 11.0, 8.0)
    assert axes_titled(figure, "input").get_images()[0].get_array().shape == (1, 5)


def test_diagnostics_figure(tmp_path):
    recorder = trained_record()
    path = tmp_path / "diagnostics.png"
    figure = diagnostic_plots.plot_diagnostics(recorder, path, dpi=DPI)
    check_png(path, 11.0, 7.5)

    norms_axes = axes_titled(figure, "weight-gradient norm")
    assert line_labels(norms_axes) == ["W_1 (relu)", "W_2 (sigmoid)", "W_3 (softmax output)"]
    np.testing.assert_allclose(line_named(norms_axes, "W_2 (sigmoid)").get_ydata(),
                               [row["weight_gradient_norm"][1] for row in recorder.rows])
    np.testing.assert_array_equal(line_named(norms_axes, "W_1 (relu)").get_xdata(), [0, 1, 2])
    assert line_labels(axes_titled(figure, "dead ReLU")) == ["h_1 (relu)"]
    saturated = line_named(axes_titled(figure, "saturated"), "h_2 (sigmoid)")
    np.testing.assert_allclose(saturated.get_ydata(),
                               [row["saturated_fraction"][1] for row in recorder.rows])
    assert line_labels(axes_titled(figure, "spread")) == ["h_1 (relu)", "h_2 (sigmoid)"]


def test_run_diagnostics_figure_from_directory(tmp_path):
    recorder = trained_record()
    recorder.save(tmp_path)
    path = diagnostic_plots.plot_run_diagnostics(tmp_path, dpi=DPI)
    assert path == tmp_path / "diagnostics.png"
    check_png(path, 11.0, 7.5)


def test_diagnostics_figure_without_relu(tmp_path):
    net = cr.Network([4, 3, 2], activation="tanh", seed=0, dtype="float64")
    recorder = diagnostics.DiagnosticsRecorder(net, np.ones((3, 4)), [0, 1, 0])
    figure = diagnostic_plots.plot_diagnostics(recorder.to_dict(), tmp_path / "d.png", dpi=DPI)
    dead_axes = axes_titled(figure, "dead ReLU")
    assert dead_axes.get_lines() == []
    assert "no relu layers" in dead_axes.texts[0].get_text()


def curves(start_accuracy, end_accuracy, epochs=3):
    return [
        {"epoch": e, "train_loss": 2.0 / (e + 1), "test_loss": 2.2 / (e + 1),
         "train_accuracy": start_accuracy + (end_accuracy - start_accuracy) * e / epochs,
         "test_accuracy": start_accuracy + 0.9 * (end_accuracy - start_accuracy) * e / epochs}
        for e in range(epochs + 1)
    ]


def test_curve_comparison_figure(tmp_path):
    results = {"cross_entropy": curves(0.1, 0.8), "mean_squared_error": curves(0.1, 0.7)}
    path = tmp_path / "compare-losses.png"
    figure = diagnostic_plots.plot_curve_comparison(results, path, title="losses", dpi=DPI)
    check_png(path, 11.0, 4.5)
    accuracy_axes = axes_titled(figure, "accuracy")
    assert line_labels(accuracy_axes) == [
        "cross_entropy train", "cross_entropy test", "mean_squared_error train",
        "mean_squared_error test",
    ]
    np.testing.assert_allclose(line_named(accuracy_axes, "mean_squared_error test").get_ydata(),
                               [row["test_accuracy"] for row in results["mean_squared_error"]])
    loss_axes = axes_titled(figure, "loss")
    np.testing.assert_allclose(line_named(loss_axes, "cross_entropy train").get_ydata(),
                               [2.0, 1.0, 2.0 / 3, 0.5])


def test_accuracy_curves_figure(tmp_path):
    rows = curves(0.1, 0.9, epochs=4)
    path = tmp_path / "accuracy-curves.png"
    figure = diagnostic_plots.plot_accuracy_curves(rows, path, dpi=DPI)
    check_png(path, 11.0, 4.5)
    accuracy_axes = axes_titled(figure, "accuracy")
    assert line_labels(accuracy_axes) == ["train accuracy", "test accuracy"]
    np.testing.assert_allclose(line_named(accuracy_axes, "train accuracy").get_ydata(),
                               [0.1, 0.3, 0.5, 0.7, 0.9])
    assert "gap" in accuracy_axes.texts[0].get_text()


def test_activation_comparison_figure(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 8)).astype(np.float32), np.arange(60) % 3
    data = DataSubset(X, y, X[:30], y[:30], X[:30], ["a", "b", "c"], "synthetic")
    records = comparisons.compare_activations(data, hidden_sizes=[6, 6], epochs=1,
                                              batch_size=30, diagnostic_rows=30)
    path = tmp_path / "compare-activations.png"
    figure = diagnostic_plots.plot_activation_comparison(records, path, dpi=DPI)
    check_png(path, 12.0, 4.2)
    by_layer = axes_titled(figure, "by layer")
    assert line_labels(by_layer) == ["sigmoid, epoch 0", "sigmoid, epoch 1", "relu, epoch 0",
                                     "relu, epoch 1"]
    np.testing.assert_allclose(line_named(by_layer, "sigmoid, epoch 0").get_ydata(),
                               records["sigmoid"]["rows"][0]["weight_gradient_norm"])
    assert line_labels(axes_titled(figure, "relu:")) == ["W_1", "W_2", "W_3"]


def test_failure_gallery_figure(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (10, 6, 6), dtype=np.uint8)
    failures = [Failure(3, 1, 2, 0.97, 0.01), Failure(7, 0, 1, 0.8, 0.1), Failure(0, 2, 0, 0.6, 0.3)]
    path = tmp_path / "failures.png"
    figure = diagnostic_plots.plot_failures(failures, images, ["cat", "dog", "owl"], path,
                                            columns=2, dpi=DPI)
    check_png(path, 1.45 * 2 + 0.4, 1.75 * 2 + 0.6)
    drawn = [axes for axes in figure.axes if axes.get_images()]
    assert len(drawn) == 3
    np.testing.assert_array_equal(drawn[0].get_images()[0].get_array(), images[3])
    assert drawn[0].get_title() == "true: dog\npred: owl 0.97"
    assert drawn[2].get_title() == "true: owl\npred: cat 0.60"


def test_failure_gallery_without_failures(tmp_path):
    path = tmp_path / "failures.png"
    figure = diagnostic_plots.plot_failures([], np.zeros((1, 4, 4)), None, path, dpi=DPI)
    check_png(path, 1.45 + 0.4, 1.75 + 0.6)
    assert figure.axes[0].texts[0].get_text() == "no misclassified examples"


def test_optimizer_paths_figure(tmp_path):
    paths = {
        name: surfaces.optimizer_paths(name, ["sgd", "adam"], steps=10)
        for name in ("bowl", "rosenbrock", "saddle")
    }
    path = tmp_path / "optimizer-paths.png"
    figure = diagnostic_plots.plot_optimizer_paths(paths, path, dpi=DPI)
    check_png(path, 15.0, 5.0)
    for name in ("bowl", "rosenbrock", "saddle"):
        axes = axes_titled(figure, surfaces.SURFACES[name].formula)
        assert line_labels(axes) == ["sgd", "adam", "start", "minimum"]
        sgd = line_named(axes, "sgd")
        np.testing.assert_array_equal(sgd.get_xdata(), paths[name]["sgd"][:, 0])
        np.testing.assert_array_equal(sgd.get_ydata(), paths[name]["sgd"][:, 1])
        assert axes.collections, "contours missing"


def test_save_figure_leaves_no_temporary(tmp_path):
    figure = diagnostic_plots.plot_accuracy_curves(curves(0.1, 0.5), dpi=DPI)
    diagnostic_plots.save_figure(figure, tmp_path / "a.png", dpi=DPI)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_import_chainrule_does_not_load_matplotlib():
    import subprocess
    import sys

    code = ("import sys, chainrule.diagnostics, chainrule.explanation, chainrule.comparisons, "
            "chainrule.surfaces, chainrule.diagnostic_plots, chainrule.cli_diagnostics; "
            "print('matplotlib' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "False"


@pytest.mark.parametrize("dpi", [30, 60])
def test_png_size_follows_dpi(tmp_path, dpi):
    from PIL import Image

    figure = diagnostic_plots.plot_accuracy_curves(curves(0.1, 0.5))
    diagnostic_plots.save_figure(figure, tmp_path / "a.png", dpi=dpi)
    with Image.open(tmp_path / "a.png") as image:
        assert image.size == (round(11.0 * dpi), round(4.5 * dpi))
