"""The real ``chainrule`` command in a subprocess, training on a small part of Fashion-MNIST.

Each run uses ``--limit-train``/``--limit-test`` so it trains for a few seconds, and
``--threads 1`` so repeated runs are bitwise equal on any machine.
"""

import csv
import json
import math
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

HISTORY_HEADER = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds"
METRIC_KEYS = {"loss", "accuracy", "precision", "recall", "f1", "per_class_accuracy",
               "confusion_matrix"}
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
# Small and fast, with a constant schedule so that a resumed run follows the same
# learning rates as an uninterrupted one.
QUICK = ["--limit-train", "2000", "--limit-test", "500", "--threads", "1",
         "--lr-schedule", "constant", "--hidden_sizes", "64", "32", "-b", "64"]


def start(*args, cwd=None):
    return subprocess.Popen(
        [sys.executable, "-m", "chainrule.cli", *[str(a) for a in args]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
    )


def finish(process, timeout=180):
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def chainrule(*args, cwd=None, timeout=180):
    return finish(start(*args, cwd=cwd), timeout=timeout)


def read_history(run_dir):
    with open(run_dir / "history.csv", newline="") as file:
        return list(csv.DictReader(file))


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def load_arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def checkpoint_meta(path):
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["meta"])), data["parameters"]


def check_png(path):
    from matplotlib import image

    pixels = image.imread(path)
    assert pixels.shape[0] >= 300, path
    assert pixels.shape[1] >= 400, path
    assert float(pixels[..., :3].std()) > 0.0, path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four epochs straight (twice, for repeatability), and two epochs resumed to four."""
    root = tmp_path_factory.mktemp("runs")
    # The three runs are independent and single-threaded, so they run side by side.
    processes = {
        "full": start("train", "-e", "4", *QUICK, "--output-dir", root / "full"),
        "repeat": start("train", "-e", "4", *QUICK, "--output-dir", root / "repeat", "--quiet"),
        "half": start("train", "-e", "2", *QUICK, "--output-dir", root / "resumed", "--quiet"),
    }
    results = {name: finish(process) for name, process in processes.items()}
    results["resume"] = chainrule("train", "--resume", root / "resumed", "-e", "4", "--quiet")
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
    return root, results


def test_run_writes_every_file(runs):
    root, _ = runs
    run_dir = root / "full"

    for name in ("config.json", "model.npz", "model.json", "checkpoint.npz", "history.csv",
                 "metrics.json", "curves.png", "confusion_matrix.png", "samples.png"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob(".*.tmp"))


def test_config_json_records_settings(runs):
    root, _ = runs
    config = json.loads((root / "full" / "config.json").read_text())

    assert config["format_version"] == 1
    assert config["epochs"] == 4
    assert config["hidden_sizes"] == [64, 32]
    assert config["lr_schedule"] == "constant"
    assert config["optimizer"] == "adam"
    assert config["learning_rate"] == 0.001
    assert config["beta1"] == 0.9
    assert config["momentum"] == 0.9
    assert config["limit_train"] == 2000


def test_history_csv_columns_and_rows(runs):
    root, _ = runs
    lines = (root / "full" / "history.csv").read_text().splitlines()
    history = read_history(root / "full")

    assert lines[0] == HISTORY_HEADER
    assert [row["epoch"] for row in history] == ["1", "2", "3", "4"]
    assert all(float(row["learning_rate"]) == 0.001 for row in history)
    assert float(history[-1]["train_loss"]) < float(history[0]["train_loss"])


def test_epoch_lines_and_summary(runs):
    _, results = runs
    lines = results["full"].stdout.splitlines()
    pattern = re.compile(
        r"^epoch [1-4]/4  train_loss \d+\.\d{4}  val_loss \d+\.\d{4}  "
        r"val_accuracy \d\.\d{4}  seconds \d+\.\d$"
    )

    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 4
    for line in epoch_lines:
        assert pattern.match(line), line
    assert any(line.startswith("test_loss ") for line in lines)


def test_quiet_prints_nothing(runs):
    _, results = runs

    assert results["repeat"].stdout == ""


def test_metrics_far_above_chance(runs):
    root, _ = runs
    metrics = json.loads((root / "full" / "metrics.json").read_text())

    assert METRIC_KEYS <= set(metrics)
    assert metrics["accuracy"] > 0.6
    assert metrics["n_samples"] == 500
    assert metrics["class_names"] == FASHION_NAMES
    assert np.sum(metrics["confusion_matrix"]) == 500
    assert len(metrics["per_class_accuracy"]) == 10
    assert 0.0 < metrics["loss"] < math.log(10)


def test_model_files_load_without_pickle(runs):
    root, _ = runs
    arrays = load_arrays(root / "full" / "model.npz")
    description = json.loads((root / "full" / "model.json").read_text())

    assert sorted(arrays) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert arrays["W1"].shape == (64, 784)
    assert arrays["W3"].shape == (10, 32)
    assert description["network"]["layer_sizes"] == [784, 64, 32, 10]
    assert description["class_names"] == FASHION_NAMES
    assert description["preprocessing"] is not None


def test_figures_are_real_images(runs):
    root, _ = runs

    for name in ("curves.png", "confusion_matrix.png", "samples.png"):
        check_png(root / "full" / name)


def test_evaluate_reproduces_metrics(runs):
    root, _ = runs
    run_dir = root / "full"
    before = (run_dir / "metrics.json").read_text()

    result = chainrule("evaluate", run_dir, "--limit-test", "500")
    evaluation = json.loads((run_dir / "evaluation-fashion_mnist.json").read_text())
    metrics = json.loads(before)

    assert result.returncode == 0, result.stderr
    for key in METRIC_KEYS:
        assert evaluation[key] == metrics[key], key
    assert (run_dir / "metrics.json").read_text() == before
    assert f"accuracy   {metrics['accuracy']:.4f}" in result.stdout


def test_same_command_repeats_bitwise(runs):
    root, _ = runs
    first = load_arrays(root / "full" / "model.npz")
    second = load_arrays(root / "repeat" / "model.npz")

    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert without_seconds(read_history(root / "full")) == without_seconds(
        read_history(root / "repeat")
    )


def test_resume_equals_straight_run(runs):
    root, _ = runs
    straight = load_arrays(root / "full" / "model.npz")
    resumed = load_arrays(root / "resumed" / "model.npz")

    for key in straight:
        np.testing.assert_array_equal(straight[key], resumed[key], err_msg=key)
    assert without_seconds(read_history(root / "full")) == without_seconds(
        read_history(root / "resumed")
    )
    straight_checkpoint = checkpoint_meta(root / "full" / "checkpoint.npz")[1]
    resumed_checkpoint = checkpoint_meta(root / "resumed" / "checkpoint.npz")[1]
    np.testing.assert_array_equal(straight_checkpoint, resumed_checkpoint)
    assert json.loads((root / "resumed" / "config.json").read_text())["epochs"] == 4


def test_resume_conflicting_setting(runs):
    root, _ = runs

    result = chainrule("train", "--resume", root / "full", "-e", "6", "-lr", "0.5", "-b", "64")

    assert result.returncode == 2
    assert "learning_rate 0.5" in result.stderr
    assert "batch_size" not in result.stderr
    assert "Traceback" not in result.stderr


def test_output_dir_rejected_then_overwritten(runs, tmp_path):
    root, _ = runs
    run_dir = tmp_path / "copy"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text("{}")
    (run_dir / "notes.txt").write_text("mine")

    rejected = chainrule("train", "-e", "1", *QUICK, "--output-dir", run_dir)
    replaced = chainrule("train", "-e", "1", *QUICK, "--output-dir", run_dir, "--overwrite",
                         "--quiet")

    assert rejected.returncode == 1
    assert "not empty" in rejected.stderr
    assert replaced.returncode == 0, replaced.stderr
    assert "accuracy" in json.loads((run_dir / "metrics.json").read_text())
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_sigint_exits_130_and_resumes(tmp_path):
    run_dir = tmp_path / "interrupted"
    process = start("train", "-e", "1000", *QUICK, "--output-dir", run_dir)
    deadline = time.monotonic() + 120
    while (
        not (run_dir / "checkpoint.npz").exists()
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    checkpoint_appeared = (run_dir / "checkpoint.npz").exists()
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    stderr = finish(process, timeout=120).stderr

    assert checkpoint_appeared, stderr
    assert process.returncode == 130
    assert "checkpoint" in stderr
    assert f"--resume {run_dir}" in stderr
    assert "Traceback" not in stderr
    completed, _ = checkpoint_meta(run_dir / "checkpoint.npz")
    done = completed["epoch"]
    assert done >= 1

    resumed = chainrule("train", "--resume", run_dir, "-e", done + 1, "--quiet")

    assert resumed.returncode == 0, resumed.stderr
    assert [int(row["epoch"]) for row in read_history(run_dir)] == list(range(1, done + 2))
    assert (run_dir / "model.npz").is_file()


def test_divergence_keeps_last_good_checkpoint(tmp_path):
    # One batch per epoch, so epoch 1 always finishes. Identity activations make the
    # network linear, so each huge SGD step multiplies the weights' scale until the loss
    # overflows a few epochs later. ReLU units would die instead and keep the loss finite.
    run_dir = tmp_path / "diverged"

    result = chainrule(
        "train", "-o", "sgd", "-lr", "1e3", "-a", "identity", "--lr-schedule", "constant",
        "-b", "200",
        "--limit-train", "200", "--val-fraction", "0", "-e", "50", "--limit-test", "100",
        "--threads", "1", "--quiet", "--output-dir", run_dir,
    )

    assert result.returncode == 3
    assert "diverged" in result.stderr
    assert "learning rate 1000" in result.stderr
    assert "Traceback" not in result.stderr
    failed_epoch = int(re.search(r"diverged at epoch (\d+)", result.stderr).group(1))
    meta, parameters = checkpoint_meta(run_dir / "checkpoint.npz")
    assert failed_epoch >= 2
    assert meta["epoch"] == failed_epoch - 1
    assert np.isfinite(parameters).all()
    assert len(read_history(run_dir)) == failed_epoch - 1
    assert not (run_dir / "model.npz").exists()


def test_learning_rate_1e3_diverges_with_defaults(tmp_path):
    # The defaults (Adam, ReLU) at a learning rate of 1e3: the first step moves every
    # weight by about 1e3, and the next batch's loss explodes while still finite.
    run_dir = tmp_path / "exploded"

    result = chainrule(
        "train", "-lr", "1e3", "--limit-train", "1000", "--limit-test", "100",
        "--threads", "1", "--quiet", "--output-dir", run_dir,
    )

    assert result.returncode == 3
    assert "diverged at epoch 1" in result.stderr
    assert "learning rate 1000" in result.stderr
    assert "too high" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (run_dir / "model.npz").exists()


def test_user_idx_folder_with_default_output_dir(tmp_path):
    from chainrule import datasets
    from chainrule.idx import write_idx

    folder = tmp_path / "shifted-fashion"
    folder.mkdir()
    images, labels = datasets.load("fashion_mnist", "train")
    test_images, test_labels = datasets.load("fashion_mnist", "test")
    # Labels 1..10, as data sets such as EMNIST letters number their classes from 1.
    write_idx(folder / "train-images-idx3-ubyte.gz", images[:1500])
    write_idx(folder / "train-labels-idx1-ubyte.gz", (labels[:1500] + 1).astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", test_images[:300])
    write_idx(folder / "t10k-labels-idx1-ubyte", (test_labels[:300] + 1).astype(np.uint8))

    result = chainrule("train", "--data-dir", folder, "-e", "3", "--threads", "1", "--quiet",
                       cwd=tmp_path)
    run_dirs = list((tmp_path / "runs").glob("shifted-fashion-*"))

    assert result.returncode == 0, result.stderr
    assert len(run_dirs) == 1
    run_dir = run_dirs[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = json.loads((run_dir / "model.json").read_text())
    assert metrics["class_names"] == [str(label) for label in range(1, 11)]
    assert model["label_mapping"]["classes"] == list(range(1, 11))
    assert metrics["accuracy"] > 0.5

    evaluated = chainrule("evaluate", run_dir)
    evaluation = json.loads((run_dir / "evaluation-shifted-fashion.json").read_text())

    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluation["accuracy"] == metrics["accuracy"]
    assert evaluation["confusion_matrix"] == metrics["confusion_matrix"]


def test_predict_on_saved_test_images(runs, tmp_path):
    from chainrule import datasets

    root, _ = runs
    images, labels = datasets.load("fashion_mnist", "test")
    np.save(tmp_path / "batch.npy", images[:200])

    result = chainrule("predict", root / "full", tmp_path / "batch.npy")
    predicted = [line.split("  ")[1].rsplit(" ", 1)[0] for line in result.stdout.splitlines()]

    assert result.returncode == 0, result.stderr
    assert len(predicted) == 200
    correct = sum(FASHION_NAMES[label] == name for label, name in zip(labels[:200], predicted))
    assert correct / 200 > 0.6


def test_unknown_choice_in_real_process():
    result = chainrule("train", "-a", "swish")

    assert result.returncode == 2
    assert "ReLU" in result.stderr
    assert "Traceback" not in result.stderr


def test_module_help_runs():
    result = chainrule("--help")

    assert result.returncode == 0
    assert "train" in result.stdout
