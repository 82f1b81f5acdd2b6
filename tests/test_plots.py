"""Figures: the drawn series, the saved PNG files and their atomic writing."""

import math
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from chainrule import plots

HISTORY = [
    {"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.6, "val_loss": 0.8, "val_accuracy": 0.65,
     "learning_rate": 0.001, "seconds": 1.0},
    {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.55, "val_accuracy": 0.78,
     "learning_rate": 0.0005, "seconds": 1.1},
    {"epoch": 3, "train_loss": 0.4, "train_accuracy": 0.85, "val_loss": 0.5, "val_accuracy": 0.81,
     "learning_rate": 0.0001, "seconds": 1.0},
]


def read_png(path):
    from matplotlib import image

    return image.imread(path)


def check_png(path, min_width=400, min_height=300):
    """Open the PNG, check its size and that it is not one flat colour."""
    pixels = read_png(path)
    assert pixels.shape[1] >= min_width
    assert pixels.shape[0] >= min_height
    assert float(pixels[..., :3].std()) > 0.0


def lines_by_label(axes):
    return {line.get_label(): line for line in axes.get_lines()}


def test_curves_draw_history_columns(tmp_path):
    figure = plots.plot_curves(HISTORY, tmp_path / "curves.png")
    loss_axes, accuracy_axes = figure.axes

    loss_lines = lines_by_label(loss_axes)
    accuracy_lines = lines_by_label(accuracy_axes)
    assert sorted(loss_lines) == ["train_loss", "val_loss"]
    assert sorted(accuracy_lines) == ["train_accuracy", "val_accuracy"]
    np.testing.assert_array_equal(loss_lines["train_loss"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(loss_lines["val_loss"].get_ydata(), [0.8, 0.55, 0.5])
    np.testing.assert_array_equal(accuracy_lines["train_accuracy"].get_ydata(), [0.6, 0.8, 0.85])
    check_png(tmp_path / "curves.png")


def test_curves_skip_missing_validation(tmp_path):
    history = [dict(row, val_loss=math.nan, val_accuracy=math.nan) for row in HISTORY]

    figure = plots.plot_curves(history)

    assert sorted(lines_by_label(figure.axes[0])) == ["train_loss"]
    assert sorted(lines_by_label(figure.axes[1])) == ["train_accuracy"]


def test_curves_read_history_csv(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds\n"
        "1,0.9,0.6,nan,nan,0.001,1.0\n"
        "2,0.5,0.8,nan,nan,0.001,1.0\n"
    )

    figure = plots.plot_curves(path)

    loss_lines = lines_by_label(figure.axes[0])

    np.testing.assert_array_equal(loss_lines["train_loss"].get_ydata(), [0.9, 0.5])
    assert "val_loss" not in loss_lines


def test_curves_reject_empty_history():
    with pytest.raises(ValueError, match="empty"):
        plots.plot_curves([])


def test_confusion_matrix_cells_and_names(tmp_path):
    confusion = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    names = ["cat", "dog", "bird"]

    figure = plots.plot_confusion_matrix(confusion, names, tmp_path / "confusion_matrix.png")
    axes = figure.axes[0]

    np.testing.assert_array_equal(axes.images[0].get_array(), confusion)
    assert [label.get_text() for label in axes.get_xticklabels()] == names
    assert [label.get_text() for label in axes.get_yticklabels()] == names
    cell_texts = sorted(text.get_text() for text in axes.texts)
    assert cell_texts == sorted(str(v) for v in confusion.ravel())
    # 21 of 25 examples lie on the diagonal.
    assert "accuracy 0.8400" in axes.get_title()
    check_png(tmp_path / "confusion_matrix.png")


def test_confusion_matrix_rejects_name_count():
    with pytest.raises(ValueError, match="2 class names"):
        plots.plot_confusion_matrix(np.eye(3, dtype=int), ["a", "b"])


def test_samples_first_image_per_class(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = np.array([2, 0, 2, 1, 0, 1])
    names = ["zero", "one", "two", "three"]

    figure = plots.plot_samples(images, labels, names, tmp_path / "samples.png",
                                predictions=np.array([2, 0, 1, 1, 0, 1]),
                                probabilities=np.full(6, 0.5))
    titled = [axes for axes in figure.axes if axes.get_title()]

    assert [axes.get_title().split("\n")[0] for axes in titled] == [
        "zero", "one", "two", "three (none)"
    ]
    # Class 0 first appears at index 1, class 1 at index 3, class 2 at index 0.
    np.testing.assert_array_equal(titled[0].images[0].get_array(), images[1])
    np.testing.assert_array_equal(titled[1].images[0].get_array(), images[3])
    np.testing.assert_array_equal(titled[2].images[0].get_array(), images[0])
    assert len(titled[3].images) == 0
    assert "predicted two (0.50)" in titled[2].get_title()
    check_png(tmp_path / "samples.png", min_width=300, min_height=200)


def test_samples_accept_flat_images():
    images = np.arange(2 * 16, dtype=np.uint8).reshape(2, 16)

    figure = plots.plot_samples(images, np.array([0, 1]), ["a", "b"])

    np.testing.assert_array_equal(figure.axes[1].images[0].get_array(), images[1].reshape(4, 4))


def test_samples_reject_non_square_flat_images():
    with pytest.raises(ValueError, match="square"):
        plots.plot_samples(np.zeros((2, 15)), np.array([0, 1]), ["a", "b"])


def test_save_leaves_no_temporary_files(tmp_path):
    plots.plot_curves(HISTORY, tmp_path / "curves.png")
    plots.plot_curves(HISTORY, tmp_path / "curves.png")

    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_failed_save_keeps_old_file(tmp_path):
    path = tmp_path / "curves.png"
    path.write_bytes(b"old")
    figure = plots.plot_curves(HISTORY)

    class Broken(Exception):
        pass

    def fail(*args, **kwargs):
        raise Broken

    figure.savefig = fail
    with pytest.raises(Broken):
        plots.save_figure(figure, path)

    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_import_does_not_load_matplotlib():
    code = "import sys, chainrule.plots; print('matplotlib' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()

    assert output == "False"


def test_saved_png_follows_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        plots.plot_curves(HISTORY, tmp_path / "curves.png")
    finally:
        os.umask(previous)

    assert stat.S_IMODE((tmp_path / "curves.png").stat().st_mode) == 0o640
