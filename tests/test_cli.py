"""The command line in-process: flags, settings, resume checks, errors, evaluate and predict.

Training itself runs in tests/test_cli_end_to_end.py; everything here fails or finishes
before a network is trained, or uses a small hand-built model.
"""

import argparse
import json
import sys
import types

import numpy as np
import pytest

import chainrule as cr
from chainrule import cli
from chainrule.idx import write_idx
from chainrule.preprocessing import LabelMapping, Preprocessor
from chainrule.training import save_model


def run_main(argv, capsys):
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def train_parser():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["train"]


# ----------------------------------------------------------------------------- flags

COURSE_ARGV = [
    "-wp", "my-project", "-we", "my-team", "-d", "mnist", "-e", "7", "-b", "32",
    "-l", "mean_squared_error", "-o", "nag", "-lr", "0.05", "-m", "0.8", "-beta", "0.7",
    "-beta1", "0.85", "-beta2", "0.99", "-eps", "1e-6", "-w_d", "0.0005", "-w_i", "Xavier",
    "-nhl", "3", "-sz", "64", "-a", "ReLU",
]


def test_course_flags_exact_spellings():
    config = cli.train_config_from_argv(COURSE_ARGV)

    expected = {
        "wandb_project": "my-project", "wandb_entity": "my-team", "dataset": "mnist",
        "epochs": 7, "batch_size": 32, "loss": "mean_squared_error", "optimizer": "nag",
        "learning_rate": 0.05, "momentum": 0.8, "beta": 0.7, "beta1": 0.85, "beta2": 0.99,
        "epsilon": 1e-6, "weight_decay": 0.0005, "weight_init": "xavier",
        "num_layers": 3, "hidden_size": 64, "hidden_sizes": [64, 64, 64], "activation": "relu",
    }
    for key, value in expected.items():
        assert config[key] == value, key


def test_course_long_flags():
    long_argv = [
        "--wandb_project", "p", "--wandb_entity", "e", "--dataset", "fashion_mnist",
        "--epochs", "3", "--batch_size", "16", "--loss", "cross_entropy", "--optimizer", "rmsprop",
        "--learning_rate", "0.002", "--momentum", "0.5", "--beta", "0.95", "--beta1", "0.8",
        "--beta2", "0.9", "--epsilon", "1e-7", "--weight_decay", "0.1", "--weight_init", "random",
        "--num_layers", "1", "--hidden_size", "8", "--activation", "tanh",
    ]

    config = cli.train_config_from_argv(long_argv)

    assert config["optimizer"] == "rmsprop"
    assert config["beta"] == 0.95
    assert config["weight_init"] == "random"
    assert config["hidden_sizes"] == [8]
    assert config["activation"] == "tanh"


def test_every_long_flag_in_snake_and_kebab_case():
    parser = train_parser()
    long_spellings = [
        (action, spelling)
        for action in parser._actions
        for spelling in action.option_strings
        if spelling.startswith("--") and spelling != "--help"
    ]
    assert len(long_spellings) > 20

    for action, spelling in long_spellings:
        kebab = spelling.replace("_", "-")
        snake = "--" + spelling[2:].replace("-", "_")
        assert kebab in action.option_strings, spelling
        assert snake in action.option_strings, spelling


@pytest.mark.parametrize(
    ("argv", "key", "value"),
    [
        (["--learning-rate", "0.1"], "learning_rate", 0.1),
        (["--batch-size", "8"], "batch_size", 8),
        (["--weight-decay", "0.5"], "weight_decay", 0.5),
        (["--hidden-sizes", "4", "2"], "hidden_sizes", [4, 2]),
        (["--val_fraction", "0.2"], "val_fraction", 0.2),
        (["--lr_schedule", "step"], "lr_schedule", "step"),
    ],
)
def test_twin_spellings_parse(argv, key, value):
    assert cli.train_config_from_argv(argv)[key] == value


@pytest.mark.parametrize(
    ("flag", "given", "canonical"),
    [
        ("-a", "ReLU", "relu"),
        ("-a", "RELU", "relu"),
        ("-a", "Tanh", "tanh"),
        ("-a", "sigmoid", "sigmoid"),
        ("-a", "identity", "identity"),
        ("-a", "Leaky_ReLU", "leaky_relu"),
        ("-w_i", "Xavier", "xavier"),
        ("-w_i", "random", "random"),
        ("-w_i", "RANDOM", "random"),
        ("-w_i", "He", "he"),
        ("-w_i", "xavier_uniform", "xavier_uniform"),
        ("-l", "Cross_Entropy", "cross_entropy"),
        ("-l", "MEAN_SQUARED_ERROR", "mean_squared_error"),
        ("-o", "ADAM", "adam"),
        ("-o", "Nadam", "nadam"),
        ("-o", "SGD", "sgd"),
        ("-d", "MNIST", "mnist"),
        ("-d", "Fashion_MNIST", "fashion_mnist"),
        ("--lr-schedule", "Cosine", "cosine"),
    ],
)
def test_choice_spellings_any_case(flag, given, canonical):
    key = {"-a": "activation", "-w_i": "weight_init", "-l": "loss", "-o": "optimizer",
           "-d": "dataset", "--lr-schedule": "lr_schedule"}[flag]

    assert cli.train_config_from_argv([flag, given])[key] == canonical


@pytest.mark.parametrize(
    ("argv", "valid"),
    [
        (["-a", "swish"], ["identity", "sigmoid", "tanh", "ReLU", "leaky_relu"]),
        (["-o", "adamw"], ["sgd", "momentum", "nag", "rmsprop", "adam", "nadam"]),
        (["-w_i", "orthogonal"], ["random", "Xavier"]),
        (["-l", "hinge"], ["cross_entropy", "mean_squared_error"]),
        (["-d", "cifar10"], ["mnist", "fashion_mnist"]),
        (["--lr-schedule", "linear"], ["constant", "step", "exponential", "cosine"]),
    ],
)
def test_unknown_choice_lists_valid_names(argv, valid, capsys):
    status, _, err = run_main(["train", *argv], capsys)

    assert status == 2
    assert argv[1] in err
    for name in valid:
        assert name in err, name


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["-sz", "0"], "-sz/--hidden_size"),
        (["-sz", "-5"], "-sz/--hidden_size"),
        (["-b", "0"], "-b/--batch_size"),
        (["-e", "0"], "-e/--epochs"),
        (["-e", "-3"], "-e/--epochs"),
        (["--hidden_sizes", "128", "0"], "--hidden_sizes"),
        (["-nhl", "-1"], "-nhl/--num_layers"),
        (["--patience", "0"], "--patience"),
        (["--threads", "0"], "--threads"),
        (["--limit-train", "0"], "--limit-train"),
        (["-lr", "0"], "-lr/--learning_rate"),
        (["-lr", "-0.1"], "-lr/--learning_rate"),
        (["-w_d", "-1"], "-w_d/--weight_decay"),
        (["-beta1", "1.0"], "-beta1/--beta1"),
        (["-eps", "0"], "-eps/--epsilon"),
        (["--val-fraction", "1"], "--val-fraction"),
        (["-b", "ten"], "-b/--batch_size"),
    ],
)
def test_invalid_numbers_rejected(argv, flag, capsys):
    status, _, err = run_main(["train", *argv], capsys)

    assert status == 2
    assert flag in err
    assert argv[-1] in err


@pytest.mark.parametrize(
    ("argv", "hidden_sizes"),
    [
        ([], [512, 256]),
        (["-nhl", "3", "-sz", "64"], [64, 64, 64]),
        (["--hidden_sizes", "128", "64", "-nhl", "3", "-sz", "32"], [128, 64]),
        (["-nhl", "0"], []),
        (["-sz", "32"], [32, 32]),
        (["-nhl", "3"], [128, 128, 128]),
    ],
)
def test_hidden_sizes_precedence(argv, hidden_sizes):
    config = cli.train_config_from_argv(argv)

    assert config["hidden_sizes"] == hidden_sizes
    assert config["num_layers"] == len(hidden_sizes)


def test_unused_optimizer_flags_recorded():
    config = cli.train_config_from_argv(["-o", "sgd", "-beta1", "0.5", "-m", "0.3", "-eps", "0.01"])

    assert config["optimizer"] == "sgd"
    assert config["beta1"] == 0.5
    assert config["momentum"] == 0.3
    assert config["epsilon"] == 0.01


@pytest.mark.parametrize(("optimizer", "rate"), [("sgd", 0.01), ("nag", 0.01), ("adam", 0.001)])
def test_learning_rate_default_follows_optimizer(optimizer, rate):
    assert cli.train_config_from_argv(["-o", optimizer])["learning_rate"] == rate


def test_defaults_without_flags():
    config = cli.train_config_from_argv([])

    assert config["dataset"] == "fashion_mnist"
    assert config["optimizer"] == "adam"
    assert config["lr_schedule"] == "cosine"
    assert config["val_fraction"] == 0.1
    assert config["wandb_project"] is None
    assert config["patience"] is None


def test_help_states_every_default():
    parser = train_parser()

    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.const is True:
            continue
        assert "default" in action.help, action.option_strings


def test_help_output_shows_one_spelling(capsys):
    status, out, _ = run_main(["train", "--help"], capsys)

    assert status == 0
    assert "--learning_rate" in out
    assert "--learning-rate" not in out
    assert "(default: 0.1)" in out
    assert "quick runs" in out


def test_argv_parser_raises_value_error():
    with pytest.raises(ValueError, match="epochs"):
        cli.train_config_from_argv(["-e", "0"])


def test_dataset_and_data_dir_conflict(tmp_path, capsys):
    status, _, err = run_main(["train", "-d", "mnist", "--data-dir", tmp_path], capsys)

    assert status == 2
    assert "--data-dir" in err


def test_patience_needs_validation(capsys):
    status, _, err = run_main(["train", "--patience", "3", "--val-fraction", "0"], capsys)

    assert status == 2
    assert "--patience" in err


# ----------------------------------------------------------------------------- run directory


def write_run_config(run_dir, argv):
    """Write a config.json as `chainrule train argv` would, and an empty checkpoint stand-in."""
    run_dir.mkdir()
    config = cli.train_config_from_argv(argv)
    (run_dir / "config.json").write_text(json.dumps({"format_version": 1, **config}))
    return config


def test_resume_conflict_names_each_setting(tmp_path, capsys):
    run_dir = tmp_path / "run"
    write_run_config(run_dir, ["-b", "64", "-lr", "0.001", "-e", "2"])

    status, _, err = run_main(
        ["train", "--resume", run_dir, "-b", "32", "-lr", "0.1", "-e", "10", "-a", "relu"], capsys
    )

    assert status == 2
    assert "batch_size 32" in err
    assert "learning_rate 0.1" in err
    assert "epochs" not in err
    assert "activation" not in err


def test_resume_keeps_stored_settings(tmp_path):
    run_dir = tmp_path / "run"
    stored = write_run_config(run_dir, ["-b", "64", "--hidden_sizes", "32", "16", "-o", "sgd"])

    config = cli.train_config_from_argv(["--resume", str(run_dir), "-e", "9", "-b", "64"])

    assert config["epochs"] == 9
    assert config["batch_size"] == 64
    assert config["hidden_sizes"] == [32, 16]
    assert config["learning_rate"] == stored["learning_rate"]


def test_resume_architecture_conflict(tmp_path):
    run_dir = tmp_path / "run"
    write_run_config(run_dir, ["--hidden_sizes", "32", "16"])

    with pytest.raises(ValueError, match="hidden_sizes 64 64"):
        cli.train_config_from_argv(["--resume", str(run_dir), "-nhl", "2", "-sz", "64"])


def test_resume_missing_run(tmp_path, capsys):
    status, _, err = run_main(["train", "--resume", tmp_path / "nothing"], capsys)

    assert status == 1
    assert "not found" in err
    assert "Traceback" not in err


def test_resume_with_other_output_dir(tmp_path, capsys):
    run_dir = tmp_path / "run"
    write_run_config(run_dir, [])

    status, _, err = run_main(
        ["train", "--resume", run_dir, "--output-dir", tmp_path / "other"], capsys
    )

    assert status == 2
    assert "--output-dir" in err


def test_non_empty_output_dir_rejected(tmp_path, capsys):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")

    status, _, err = run_main(["train", "--output-dir", tmp_path, "--limit-train", "100"], capsys)

    assert status == 1
    assert "not empty" in err
    assert "--overwrite" in err
    assert keep.read_text() == "mine"


def test_missing_data_folder(tmp_path, capsys):
    status, _, err = run_main(
        ["train", "--data-dir", tmp_path / "no-such-folder", "--output-dir", tmp_path / "run"],
        capsys,
    )

    assert status == 1
    assert "no-such-folder" in err
    assert "does not exist" in err
    assert not (tmp_path / "run").exists()


def test_data_folder_without_idx_files(tmp_path, capsys):
    (tmp_path / "data").mkdir()

    status, _, err = run_main(
        ["train", "--data-dir", tmp_path / "data", "--output-dir", tmp_path / "run"], capsys
    )

    assert status == 1
    assert "train-images-idx3-ubyte" in err
    assert "Traceback" not in err


def test_no_command_is_usage_error(capsys):
    status, _, err = run_main([], capsys)

    assert status == 2
    assert "COMMAND" in err


# ----------------------------------------------------------------------------- other modules' commands


def fake_module(name, command, status):
    module = types.ModuleType(name)

    def register(subparsers):
        subparsers.add_parser(command).set_defaults(handler=lambda args: status)

    module.register = register
    return module


def test_registers_other_subcommands(monkeypatch):
    monkeypatch.setitem(sys.modules, "chainrule.cli_diagnostics",
                        fake_module("chainrule.cli_diagnostics", "gradcheck", 5))
    monkeypatch.setitem(sys.modules, "chainrule.cli_sweep",
                        fake_module("chainrule.cli_sweep", "sweep", 6))

    assert cli.main(["gradcheck"]) == 5
    assert cli.main(["sweep"]) == 6


def patch_import(monkeypatch, failing_module, missing_name):
    real_import = cli.importlib.import_module

    def import_module(name, *args):
        if name == failing_module:
            raise ModuleNotFoundError(f"No module named {missing_name!r}", name=missing_name)
        return real_import(name, *args)

    monkeypatch.setattr(cli.importlib, "import_module", import_module)


def test_missing_subcommand_module_skipped(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "chainrule.cli_diagnostics",
                        fake_module("chainrule.cli_diagnostics", "gradcheck", 5))
    patch_import(monkeypatch, "chainrule.cli_sweep", "chainrule.cli_sweep")

    status, _, err = run_main(["sweep"], capsys)

    assert status == 2
    assert "invalid choice" in err


def test_missing_dependency_of_subcommand_propagates(monkeypatch):
    patch_import(monkeypatch, "chainrule.cli_sweep", "optuna")

    with pytest.raises(ModuleNotFoundError, match="optuna"):
        cli.build_parser()


# ----------------------------------------------------------------------------- a hand-built model

# Softmax regression on 28x28 images: logit_0 = 0 and logit_1 = Σ (4/784) x_i with pixels
# scaled to [0, 1]. A white image gives logits [0, 4], so P(bright) = 1 / (1 + e^-4) =
# 0.9820137900379085; a black one gives [0, 0], a tie that argmax gives to class 0 ("dark").
WHITE_PROBABILITY = "0.9820"


@pytest.fixture
def model_dir(tmp_path):
    net = cr.Network([784, 2], dtype="float64")
    net.weights[0][0] = 0.0
    net.weights[0][1] = 4.0 / 784
    net.biases[0][...] = 0.0
    preprocessor = Preprocessor(dtype="float64").fit(np.zeros((1, 28, 28), dtype=np.uint8))
    directory = tmp_path / "model"
    save_model(directory, net, preprocessor=preprocessor,
               label_mapping=LabelMapping(np.array([5, 9])), class_names=["dark", "bright"],
               metadata={})
    return directory


def write_png(path, array, mode):
    from PIL import Image

    Image.fromarray(array, mode=mode).save(path)
    return path


def white(shape=(28, 28)):
    return np.full(shape, 255, dtype=np.uint8)


def test_predict_png_and_npy(model_dir, tmp_path, capsys):
    png = write_png(tmp_path / "white.png", white(), "L")
    rgb = write_png(tmp_path / "rgb.png", np.stack([white()] * 3, axis=-1), "RGB")
    stack = tmp_path / "pair.npy"
    np.save(stack, np.stack([white(), np.zeros((28, 28), dtype=np.uint8)]))

    status, out, _ = run_main(["predict", model_dir, png, rgb, stack], capsys)
    lines = out.splitlines()

    assert status == 0
    assert lines[0] == f"{png}  bright {WHITE_PROBABILITY}"
    assert lines[1] == f"{rgb}  bright {WHITE_PROBABILITY}"
    assert lines[2] == f"{stack}[0]  bright {WHITE_PROBABILITY}"
    assert lines[3] == f"{stack}[1]  dark 0.5000"


def test_predict_invert_and_float_npy(model_dir, tmp_path, capsys):
    black_png = write_png(tmp_path / "black.png", np.zeros((28, 28), dtype=np.uint8), "L")
    floats = tmp_path / "flat.npy"
    np.save(floats, np.zeros(784, dtype=np.float32))

    status, out, _ = run_main(["predict", model_dir, black_png, floats, "--invert"], capsys)
    lines = out.splitlines()

    assert status == 0
    assert lines[0] == f"{black_png}  bright {WHITE_PROBABILITY}"
    assert lines[1] == f"{floats}  bright {WHITE_PROBABILITY}"


def test_predict_transparent_png_is_background(model_dir, tmp_path, capsys):
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white colour, but fully transparent everywhere
    png = write_png(tmp_path / "clear.png", rgba, "RGBA")

    status, out, _ = run_main(["predict", model_dir, png, "--top", "2"], capsys)

    assert status == 0
    assert out.strip() == f"{png}  dark 0.5000  bright 0.5000"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("big.png", "png32", "32x32"),
        ("wide.png", "png28x30", "30x28"),
        ("small.npy", "npy5", "(5, 5)"),
        ("loud.npy", "npy_float2", "[0, 1]"),
        ("photo.jpg", "bytes", "unsupported file type"),
        ("broken.png", "bytes", "not a readable PNG"),
        ("missing.png", None, "not found"),
    ],
)
def test_predict_bad_images(model_dir, tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content == "png32":
        write_png(path, white((32, 32)), "L")
    elif content == "png28x30":
        write_png(path, white((28, 30)), "L")
    elif content == "npy5":
        np.save(path, np.zeros((5, 5), dtype=np.uint8))
    elif content == "npy_float2":
        np.save(path, np.full((28, 28), 2.0))
    elif content == "bytes":
        path.write_bytes(b"definitely not an image")

    status, _, err = run_main(["predict", model_dir, path], capsys)

    assert status == 1
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "damage",
    [
        "json_garbage",
        "json_foreign",
        "npz_garbage",
        "npz_missing",
    ],
)
def test_damaged_or_foreign_model(model_dir, tmp_path, capsys, damage):
    if damage == "json_garbage":
        (model_dir / "model.json").write_text("{ not json")
    elif damage == "json_foreign":
        (model_dir / "model.json").write_text(json.dumps({"name": "some other tool"}))
    elif damage == "npz_garbage":
        (model_dir / "model.npz").write_bytes(b"PK\x03\x04 broken zip")
    else:
        (model_dir / "model.npz").unlink()
    image = tmp_path / "x.npy"
    np.save(image, white())

    for command in (["predict", model_dir, image], ["evaluate", model_dir, "-d", "mnist"]):
        status, _, err = run_main(command, capsys)

        assert status == 1, command
        assert "model" in err, command
        assert "Traceback" not in err, command


def test_missing_model_path(tmp_path, capsys):
    status, _, err = run_main(["evaluate", tmp_path / "nope"], capsys)

    assert status == 1
    assert "nope" in err


def test_evaluate_without_recorded_data_set(model_dir, capsys):
    status, _, err = run_main(["evaluate", model_dir], capsys)

    assert status == 1
    assert "-d or --data-dir" in err


def test_evaluate_on_idx_folder(model_dir, tmp_path, capsys):
    # Test images: 3 white labelled 9 (correct), 2 black labelled 5 (correct) and 1 white
    # labelled 5 (predicted 9). Per-example losses: log(1 + e^-4) = 0.018149927917809738 for
    # white-as-9, log 2 for black, log(1 + e^4) = 4.0181499279178094 for white-as-5;
    # mean (3 · 0.018149927917809738 + 2 · log 2 + 4.0181499279178094) / 6 = 0.9098156787985215.
    folder = tmp_path / "digits"
    folder.mkdir()
    black = np.zeros((28, 28), dtype=np.uint8)
    images = np.stack([white(), white(), white(), black, black, white()])
    write_idx(folder / "t10k-images-idx3-ubyte", images)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([9, 9, 9, 5, 5, 5], dtype=np.uint8))
    (model_dir / "metrics.json").write_text('{"kept": true}')

    status, out, _ = run_main(["evaluate", model_dir, "--data-dir", folder], capsys)
    written = json.loads((model_dir / "evaluation-digits.json").read_text())

    assert status == 0
    assert written["loss"] == pytest.approx(0.9098156787985215, abs=1e-12)
    assert written["accuracy"] == pytest.approx(5 / 6, abs=1e-15)
    assert written["confusion_matrix"] == [[2, 1], [0, 3]]
    assert written["per_class_accuracy"] == pytest.approx([2 / 3, 1.0], abs=1e-15)
    assert written["class_names"] == ["dark", "bright"]
    assert "accuracy   0.8333" in out
    assert json.loads((model_dir / "metrics.json").read_text()) == {"kept": True}
