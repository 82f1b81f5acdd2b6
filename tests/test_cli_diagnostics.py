"""The gradcheck, explain, failures, plot-diagnostics and comparison subcommands."""

import argparse
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from conftest import skip_or_fail

import chainrule as cr
from chainrule import activations, cli_diagnostics, diagnostics
from chainrule.explanation import explain
from chainrule.idx import write_idx
from chainrule.preprocessing import LabelMapping, Preprocessor
from chainrule.training import save_model


def run(argv, capsys):
    """Parse ``argv`` with a parser that only has these subcommands; return (status, stdout)."""
    parser = argparse.ArgumentParser(prog="chainrule")
    cli_diagnostics.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status = args.handler(args)
    return status, capsys.readouterr().out


def check_png(path):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] > 100
        assert np.asarray(image.convert("L"), dtype=np.float64).std() > 0


# -------------------------------------------------------------------------------- gradcheck


def test_gradcheck_default_checks_every_pair(capsys):
    status, output = run(["gradcheck"], capsys)
    assert status == 0
    for activation in cr.activations.names():
        for loss in cr.losses.names():
            assert f"activation {activation}, loss {loss}: layer sizes 4-5-5-3" in output
    assert output.count("array  shape") == 10
    assert output.count("PASS") == 60
    assert "FAIL" not in output
    assert "10 of 10 activation × loss pairs" in output


def test_gradcheck_with_arguments(capsys):
    status, output = run(
        ["gradcheck", "--layer-sizes", "3,4", "2", "--activation", "tanh", "--loss", "mse",
         "--weight-decay", "0.1", "--batch", "4", "--seed", "3", "--tolerance", "1e-5"],
        capsys,
    )
    assert status == 0
    assert ("activation tanh, loss mean_squared_error: layer sizes 3-4-2, batch 4, "
            "weight decay 0.1, seed 3") in output
    assert output.count("array  shape") == 1
    for name in ("W1 ", "b1 ", "W2 ", "b2 "):
        assert name in output
    assert "tolerance 1e-05" in output


def test_gradcheck_no_hidden_layer_checks_each_loss_once(capsys):
    status, output = run(["gradcheck", "--layer-sizes", "3", "2"], capsys)
    assert status == 0
    assert output.count("array  shape") == 2


def test_gradcheck_too_strict_tolerance_fails(capsys):
    status, output = run(["gradcheck", "--activation", "sigmoid", "--loss", "cross_entropy",
                          "--tolerance", "1e-30"], capsys)
    assert status == 1
    assert "FAIL" in output
    assert "1 of 1 activation × loss pairs failed (sigmoid × cross_entropy)" in output


class WrongSigmoid(activations.Sigmoid):
    """A sigmoid whose derivative omits the (1 - h) factor."""

    def backward(self, grad_h, a, h, out=None):
        return np.multiply(grad_h, h, out=out)


def test_gradcheck_exits_nonzero_on_broken_derivative(capsys, monkeypatch):
    original = cli_diagnostics.build_gradcheck_network

    def broken_network(*args):
        net = original(*args)
        original_copy = net.copy

        # gradcheck checks a float64 copy rebuilt from the activation names, so the broken
        # activation goes into that copy.
        def copy_with_broken_activation(dtype=None):
            duplicate = original_copy(dtype)
            duplicate.activation_functions = [WrongSigmoid() for _ in duplicate.activation_functions]
            return duplicate

        net.copy = copy_with_broken_activation
        return net

    monkeypatch.setattr(cli_diagnostics, "build_gradcheck_network", broken_network)
    status, output = run(["gradcheck", "--activation", "sigmoid", "--loss", "cross_entropy"], capsys)
    assert status == 1
    results = {line.split()[0]: line.split()[-1] for line in output.splitlines()
               if line.split()[:1] in (["W1"], ["b1"], ["W2"], ["b2"], ["W3"], ["b3"])}
    assert results["W1"] == "FAIL"
    assert results["W2"] == "FAIL"
    # The output layer's gradients do not pass through the broken derivative.
    assert results["W3"] == "PASS"
    assert "gradient check FAILED" in output


def test_gradcheck_reports_kink_skipped_entries(capsys, monkeypatch):
    def kink_network(layer_sizes, activation, loss, weight_decay, seed):
        # One ReLU unit with w = 0 and b = 0: its pre-activation is 0 for every input, on
        # the kink, so moving W1 or b1 by ±h crosses it and both entries are skipped.
        net = cr.Network([1, 1, 2], activation="relu", seed=0, dtype="float64")
        net.weights[0][...] = [[0.0]]
        net.weights[1][...] = [[2.0], [-1.0]]
        return net

    monkeypatch.setattr(cli_diagnostics, "build_gradcheck_network", kink_network)
    status, output = run(["gradcheck", "--activation", "relu", "--loss", "cross_entropy",
                          "--layer-sizes", "1", "1", "2"], capsys)
    assert status == 0
    rows = {line.split()[0]: line.split() for line in output.splitlines()
            if line.split()[:1] in (["W1"], ["b1"], ["W2"])}
    # Columns: array, shape, error, checked, skipped, result.
    assert rows["W1"][3:5] == ["0", "1"]
    assert rows["b1"][3:5] == ["0", "1"]
    assert rows["W2"][3:5] == ["2", "0"]


def test_gradcheck_rejects_unknown_activation(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(["gradcheck", "--activation", "softplus"], capsys)
    assert exit_info.value.code == 2
    assert "unknown activation 'softplus'" in capsys.readouterr().err


def test_gradcheck_rejects_zero_layer_size(capsys):
    with pytest.raises(SystemExit):
        run(["gradcheck", "--layer-sizes", "4,0,3"], capsys)


def test_gradcheck_through_module_entry_point():
    if importlib.util.find_spec("chainrule.cli") is None:
        skip_or_fail("chainrule.cli is not in the tree yet")
    result = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "gradcheck", "--activation", "relu", "--loss",
         "cross_entropy", "--layer-sizes", "3,4,2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout
    assert "1 of 1 activation × loss pairs" in result.stdout


def test_gradcheck_module_failure_exit_status():
    if importlib.util.find_spec("chainrule.cli") is None:
        skip_or_fail("chainrule.cli is not in the tree yet")
    result = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "gradcheck", "--activation", "tanh", "--loss",
         "mse", "--tolerance", "1e-30"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "FAIL" in result.stdout


# ---------------------------------------------------------------------- saved-model commands


@pytest.fixture
def idx_folder(tmp_path):
    """An IDX folder of 6x6 images in three classes labelled 1, 5 and 9."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    folder.mkdir()
    for split, n in (("train", 90), ("t10k", 30)):
        labels = np.array([1, 5, 9] * (n // 3), dtype=np.uint8)
        images = rng.integers(0, 60, (n, 6, 6)).astype(np.uint8)
        for position, label in enumerate((1, 5, 9)):
            images[labels == label, position * 2:position * 2 + 2, :] += 150
        write_idx(folder / f"{split}-images-idx3-ubyte", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels)
    return folder


@pytest.fixture
def run_dir(tmp_path, idx_folder):
    """A run directory with a model trained on the IDX folder."""
    data = cr.datasets.load_dataset(idx_folder, "train")
    preprocessor = Preprocessor(scale=True)
    X = preprocessor.fit_transform(data.features)
    net = cr.Network([36, 8, 3], activation="relu", seed=0)
    cr.Trainer(net, cr.optimizers.get("adam", learning_rate=0.01), epochs=3, batch_size=16,
               quiet=True).fit(X, data.labels)
    directory = tmp_path / "run"
    save_model(directory, net, preprocessor=preprocessor, label_mapping=data.label_mapping,
               class_names=["one", "five", "nine"],
               metadata={"dataset": None, "data_dir": str(idx_folder)})
    return directory


def test_explain_prints_walk_and_writes_figure(capsys, run_dir, idx_folder):
    status, output = run(["explain", str(run_dir), "--index", "4", "--top", "2"], capsys)
    assert status == 0
    assert "Example 4 of the data test set" in output
    for symbol in ("ŷ_j", "e(ℓ)_j", "∇_{a_2} L = ŷ − e(ℓ)", "∇_{W_2} L", "∇_{b_2} L",
                   "∇_{h_1} L", "∇_{a_1} L", "∇_{W_1} L", "∇_{h_0} L"):
        assert symbol in output
    check_png(run_dir / "explain-4.png")

    # The printed output gradient is the model's ŷ − e(ℓ) for that test image.
    model = cr.load_model(run_dir)
    images, labels = cr.datasets.load_folder(idx_folder, "test")
    expected = explain(model, images[4], labels[4])
    norm_line = next(line for line in output.splitlines() if "∇_{a_2} L = ŷ − e(ℓ)" in line)
    assert f"norm {expected.output_gradient.norm:.4g}" in norm_line
    probabilities = model.predict_proba(images[4:5])[0]
    one_hot = np.eye(3)[model.label_mapping.encode(labels[4:5])[0]]
    np.testing.assert_allclose(expected.output_gradient.values, probabilities - one_hot, atol=1e-6)


def test_explain_output_option_and_no_figure(capsys, run_dir, tmp_path):
    status, output = run(["explain", str(run_dir / "model.json"), "--index", "0", "--no-figure"],
                         capsys)
    assert status == 0
    assert not (run_dir / "explain-0.png").exists()
    target = tmp_path / "elsewhere.png"
    status, output = run(["explain", str(run_dir), "--output", str(target)], capsys)
    assert status == 0
    check_png(target)


def test_explain_index_out_of_range(capsys, run_dir):
    with pytest.raises(ValueError, match="--index 30 is out of range"):
        run(["explain", str(run_dir), "--index", "30"], capsys)


def test_explain_missing_model(capsys, tmp_path):
    with pytest.raises(ValueError, match="not found"):
        run(["explain", str(tmp_path / "nothing")], capsys)


def test_explain_builtin_dataset_from_metadata(capsys, tmp_path):
    net = cr.Network([784, 10], seed=0)
    preprocessor = Preprocessor(scale=True).fit(np.zeros((1, 28, 28), dtype=np.uint8))
    save_model(tmp_path, net, preprocessor=preprocessor,
               label_mapping=LabelMapping(np.arange(10)),
               class_names=cr.datasets.class_names("fashion_mnist"),
               metadata={"dataset": "fashion_mnist"})
    status, output = run(["explain", str(tmp_path), "--index", "0"], capsys)
    assert status == 0
    # Test image 0 of Fashion-MNIST is an ankle boot (class 9).
    assert "true class ℓ = 9 (Ankle boot)" in output
    check_png(tmp_path / "explain-0.png")


def test_failures_command(capsys, run_dir):
    status, output = run(["failures", str(run_dir), "--count", "4", "--columns", "2"], capsys)
    assert status == 0
    check_png(run_dir / "failures.png")
    assert "most confidently wrong predictions on the data test set (30 examples)" in output


def test_plot_diagnostics_command(capsys, tmp_path):
    net = cr.Network([4, 3, 2], seed=0)
    diagnostics.recorder_for_run(tmp_path, net, np.ones((6, 4)), [0, 1] * 3)
    status, output = run(["plot-diagnostics", str(tmp_path)], capsys)
    assert status == 0
    check_png(tmp_path / "diagnostics.png")


def test_plot_diagnostics_without_record(capsys, tmp_path):
    with pytest.raises(ValueError, match="--diagnostics"):
        run(["plot-diagnostics", str(tmp_path)], capsys)


# ------------------------------------------------------------------------------ comparisons


def comparison_arguments(idx_folder, output):
    return ["--data-dir", str(idx_folder), "--train-size", "60", "--test-size", "30", "-e", "2",
            "--hidden-sizes", "6", "-b", "20", "--quiet", "--dpi", "40", "--output", str(output)]


def test_compare_losses_command(capsys, idx_folder, tmp_path):
    output_path = tmp_path / "losses.png"
    status, output = run(["compare-losses", *comparison_arguments(idx_folder, output_path)], capsys)
    assert status == 0
    check_png(output_path)
    assert "cross_entropy" in output
    assert "mean_squared_error" in output


def test_compare_optimizers_command(capsys, idx_folder, tmp_path):
    output_path = tmp_path / "optimizers.png"
    status, output = run(["compare-optimizers", *comparison_arguments(idx_folder, output_path),
                          "--optimizers", "sgd", "nag", "--learning-rates", "sgd=0.5"], capsys)
    assert status == 0
    check_png(output_path)
    rows = [line.split()[0] for line in output.splitlines()[1:3]]
    assert rows == ["sgd", "nag"]


def test_compare_optimizers_rejects_bad_rate(capsys, idx_folder, tmp_path):
    with pytest.raises(SystemExit):
        run(["compare-optimizers", "--learning-rates", "sgd:0.1"], capsys)
    assert "expected NAME=RATE" in capsys.readouterr().err


def test_compare_activations_command(capsys, idx_folder, tmp_path):
    output_path = tmp_path / "activations.png"
    status, output = run(["compare-activations", *comparison_arguments(idx_folder, output_path)],
                         capsys)
    assert status == 0
    check_png(output_path)
    assert output.startswith("sigmoid: weight-gradient norms before training: W_1 ")


def test_accuracy_curves_command(capsys, idx_folder, tmp_path):
    output_path = tmp_path / "curves.png"
    status, output = run(["accuracy-curves", *comparison_arguments(idx_folder, output_path)],
                         capsys)
    assert status == 0
    check_png(output_path)
    assert "train_accuracy  test_accuracy" in output
    # The row is labelled with the network's layer sizes: 6x6 images, 6 hidden units.
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if "train_accuracy  test_accuracy" in line)
    assert lines[header + 1].startswith("36-6-")


def test_comparison_prints_epoch_lines(capsys, idx_folder, tmp_path):
    arguments = [a for a in comparison_arguments(idx_folder, tmp_path / "c.png") if a != "--quiet"]
    status, output = run(["accuracy-curves", *arguments], capsys)
    assert status == 0
    assert "epoch 2/2" in output


def test_optimizer_paths_command(capsys, tmp_path):
    output_path = tmp_path / "paths.png"
    status, output = run(["optimizer-paths", "--surfaces", "bowl", "saddle", "--optimizers", "sgd",
                          "adam", "--steps", "5", "--learning-rates", "sgd=0.1", "--dpi", "40",
                          "--output", str(output_path)], capsys)
    assert status == 0
    check_png(output_path)
    # SGD with rate 0.1 on x²/2 + 5y² from (-4, 1.5): x_t = -4 * 0.9^t and y_1 = 0, so after
    # 5 steps f = (4 * 0.9^5)² / 2 = 2.7894... (printed to 3 digits).
    assert "bowl: after 5 steps: sgd f = 2.79" in output


def test_optimizer_paths_rejects_unknown_surface(capsys):
    with pytest.raises(SystemExit):
        run(["optimizer-paths", "--surfaces", "himmelblau"], capsys)


def test_register_sets_handlers():
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    cli_diagnostics.register(subparsers)
    for command in ("gradcheck", "explain", "failures", "plot-diagnostics", "compare-losses",
                    "compare-optimizers", "compare-activations", "accuracy-curves",
                    "optimizer-paths"):
        assert callable(subparsers.choices[command].get_default("handler")), command
