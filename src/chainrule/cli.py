"""The ``chainrule`` command line: ``train``, ``evaluate`` and ``predict``.

``chainrule train`` accepts every flag of the CS6910/DA6401 course assignment's
``train.py`` with the course's spellings (``-lr``, ``-w_d``, ``-nhl``, ``Xavier``, ``ReLU``),
and every long flag in snake and in kebab case (``--learning_rate`` and
``--learning-rate``). A run writes one directory::

    config.json          every setting, resolved, with a format_version
    model.npz, model.json
                         the trained weights, the preprocessing and the label mapping
    checkpoint.npz       the state after the last finished epoch, for --resume
    history.csv          epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds
    metrics.json         loss, accuracy, macro precision/recall/F1, per-class accuracy and
                         the confusion matrix on the test split
    curves.png, confusion_matrix.png, samples.png

Exit status: 0 on success, 1 for an error (one line on stderr), 2 for invalid arguments,
3 when training diverged (the message names the epoch, batch and learning rate), and 130
when Ctrl-C interrupted training.

Other tools train through the same code in-process::

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    config = build_train_config(parser.parse_args(["-lr", "0.001", "-e", "5"]))
    run_directory = run_training(config, "runs/trial-1", quiet=True, callbacks=[...])

:func:`train_config_from_argv` does the first three lines in one call and raises
``ValueError`` instead of exiting for invalid arguments. Subcommands from
``chainrule.cli_diagnostics`` and ``chainrule.cli_sweep`` are added when those modules
are installed; each provides ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import datetime
import importlib
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from chainrule import __version__
from chainrule.argument_types import (
    finite_float as _float,
    non_negative_float as _non_negative_float,
    non_negative_int as _non_negative_int,
    positive_float as _positive_float,
    positive_int as _positive_int,
)

__all__ = [
    "main",
    "build_parser",
    "add_train_arguments",
    "build_train_config",
    "train_config_from_argv",
    "run_training",
    "CommandError",
    "CONFIG_FORMAT_VERSION",
    "TRAIN_DEFAULTS",
    "RUN_FILES",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

CONFIG_FORMAT_VERSION = 1

# The files a run directory holds. --overwrite deletes exactly these (and
# evaluation-*.json and the --diagnostics files), never anything else a user keeps in
# the folder.
RUN_FILES = (
    "config.json",
    "model.npz",
    "model.json",
    "checkpoint.npz",
    "history.csv",
    "metrics.json",
    "curves.png",
    "confusion_matrix.png",
    "samples.png",
)

# The default architecture and training settings were chosen by measuring Fashion-MNIST
# test accuracy over seeds 0, 1 and 2, with 10 % of the training split held out for
# validation. docs/benchmarks.md records the runs and how to repeat them.
DEFAULT_HIDDEN_SIZES = (512, 256)
DEFAULT_NUM_LAYERS = 2
DEFAULT_HIDDEN_SIZE = 128

# Every setting of a training run, with its default. A default of None for
# learning_rate means the chosen optimizer's own default; for the other keys it means off
# or not given. num_layers and hidden_size are stored as resolved from hidden_sizes.
TRAIN_DEFAULTS: dict[str, Any] = {
    "dataset": "fashion_mnist",
    "data_dir": None,
    "epochs": 20,
    "batch_size": 128,
    "loss": "cross_entropy",
    "optimizer": "adam",
    "learning_rate": None,
    "momentum": 0.9,
    "beta": 0.9,
    "beta1": 0.9,
    "beta2": 0.999,
    "epsilon": 1e-8,
    "weight_decay": 0.0,
    "weight_init": "xavier",
    "num_layers": DEFAULT_NUM_LAYERS,
    "hidden_size": DEFAULT_HIDDEN_SIZE,
    "hidden_sizes": list(DEFAULT_HIDDEN_SIZES),
    "activation": "relu",
    "val_fraction": 0.1,
    "patience": None,
    "lr_schedule": "cosine",
    "seed": 0,
    "threads": None,
    "limit_train": None,
    "limit_test": None,
    "diagnostics": False,
    "wandb_project": None,
    "wandb_entity": None,
}

# Settings that --resume may change; every other one must match config.json.
_RESUMABLE_CHANGES = ("epochs",)

# Long option spellings added only as aliases: the kebab or snake twin of the spelling
# shown in --help. The help formatter hides them, so each option is listed once.
_ALIAS_SPELLINGS: set[str] = set()


class CommandError(Exception):
    """A user error that ends the command with a one-line message and exit status 1."""


class _UsageError(CommandError):
    """Arguments that parse but contradict each other; exit status 2, like argparse."""


# --------------------------------------------------------------------------- argument types












def _decay(text: str) -> float:
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def _validation_fraction(text: str) -> float:
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"must be in [0, 1) (0 turns validation off), got {text!r}"
        )
    return value


def _name_type(kind: str, shown: Sequence[str], canonical: Callable[[str], str]):
    """Return an argparse type that maps any accepted spelling to the canonical name."""

    def convert(text: str) -> str:
        try:
            return canonical(text)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(
                f"invalid {kind} {text!r}; choose from {', '.join(shown)} (any letter case)"
            ) from None

    convert.__name__ = kind
    return convert


def _choice_types() -> dict[str, Callable[[str], str]]:
    from chainrule import activations, datasets, initializers, losses, optimizers, schedules

    def optimizer_name(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in optimizers.names():
            raise ValueError(text)
        return lowered

    def schedule_name(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in schedules.names():
            raise ValueError(text)
        return lowered

    return {
        "dataset": _name_type("data set", list(datasets.BUILTIN), datasets.canonical_name),
        "loss": _name_type("loss", losses.names(), losses.canonical_name),
        "optimizer": _name_type("optimizer", optimizers.names(), optimizer_name),
        "weight_init": _name_type(
            "weight initialisation", ["random", "Xavier", *initializers.names()[1:]],
            initializers.canonical_name,
        ),
        "activation": _name_type(
            "activation", ["identity", "sigmoid", "tanh", "ReLU", "leaky_relu"],
            activations.canonical_name,
        ),
        "lr_schedule": _name_type("learning-rate schedule", schedules.names(), schedule_name),
    }


# --------------------------------------------------------------------------- the parser


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option once, in the spelling it was declared with."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if action.option_strings:
            shown = copy.copy(action)
            shown.option_strings = [s for s in action.option_strings if s not in _ALIAS_SPELLINGS]
            return super()._format_action_invocation(shown)
        return super()._format_action_invocation(action)


class _RaisingParser(argparse.ArgumentParser):
    """A parser that raises ValueError for invalid arguments instead of exiting."""

    def error(self, message: str):
        raise ValueError(message)


def _add_option(parser, *spellings: str, **options) -> argparse.Action:
    """Add an option under its spellings plus the snake or kebab twin of each long one."""
    all_spellings = list(spellings)
    for spelling in spellings:
        if not spelling.startswith("--"):
            continue
        for twin in (spelling.replace("_", "-"), "--" + spelling[2:].replace("-", "_")):
            if twin not in all_spellings:
                all_spellings.append(twin)
                _ALIAS_SPELLINGS.add(twin)
    return parser.add_argument(*all_spellings, **options)


def _default_text(key: str) -> str:
    value = TRAIN_DEFAULTS[key]
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every ``chainrule train`` option to ``parser``.

    All options default to None in the parsed namespace, so :func:`build_train_config`
    can tell the settings a user gave from those left out, which ``--resume`` needs.
    The defaults themselves are in :data:`TRAIN_DEFAULTS` and are shown in ``--help``.
    """
    types = _choice_types()

    course = parser.add_argument_group(
        "course flags", "The flags of the course assignment's train.py, with its spellings."
    )
    _add_option(course, "-wp", "--wandb_project", metavar="PROJECT",
                help="log the run to this Weights & Biases project (default: none, no logging)")
    _add_option(course, "-we", "--wandb_entity", metavar="ENTITY",
                help="W&B user or team that owns the project (default: your default entity)")
    _add_option(course, "-d", "--dataset", type=types["dataset"], metavar="{mnist,fashion_mnist}",
                help="built-in data set, any letter case (default: fashion_mnist)")
    _add_option(course, "-e", "--epochs", type=_positive_int, metavar="N",
                help=f"total number of epochs, passes over the training split "
                     f"(default: {_default_text('epochs')})")
    _add_option(course, "-b", "--batch_size", type=_positive_int, metavar="N",
                help=f"examples per mini-batch (default: {_default_text('batch_size')})")
    _add_option(course, "-l", "--loss", type=types["loss"],
                metavar="{mean_squared_error,cross_entropy}",
                help="loss on the softmax output (default: cross_entropy)")
    _add_option(course, "-o", "--optimizer", type=types["optimizer"],
                metavar="{sgd,momentum,nag,rmsprop,adam,nadam}",
                help="optimizer (default: adam)")
    _add_option(course, "-lr", "--learning_rate", type=_positive_float, metavar="RATE",
                help="initial learning rate, the step size of the first epoch (default: the "
                     "optimizer's own: 0.01 for sgd, momentum and nag, 0.001 for rmsprop, adam "
                     "and nadam)")
    _add_option(course, "-m", "--momentum", type=_decay, metavar="BETA",
                help="velocity decay of momentum and nag; recorded but unused by other "
                     f"optimizers (default: {_default_text('momentum')})")
    _add_option(course, "-beta", "--beta", type=_decay, metavar="BETA",
                help="decay of rmsprop's squared-gradient average "
                     f"(default: {_default_text('beta')})")
    _add_option(course, "-beta1", "--beta1", type=_decay, metavar="BETA1",
                help="first-moment decay of adam and nadam "
                     f"(default: {_default_text('beta1')})")
    _add_option(course, "-beta2", "--beta2", type=_decay, metavar="BETA2",
                help="second-moment decay of adam and nadam "
                     f"(default: {_default_text('beta2')})")
    _add_option(course, "-eps", "--epsilon", type=_positive_float, metavar="EPS",
                help="denominator term of rmsprop, adam and nadam "
                     f"(default: {_default_text('epsilon')})")
    _add_option(course, "-w_d", "--weight_decay", type=_non_negative_float, metavar="LAMBDA",
                help="L2 weight decay λ: adds λ/2 · Σ‖W_k‖² to the loss, biases excluded "
                     f"(default: {_default_text('weight_decay')})")
    _add_option(course, "-w_i", "--weight_init", type=types["weight_init"],
                metavar="{random,Xavier,...}",
                help="initial weights: random, Xavier, xavier_uniform, he or zeros, any letter "
                     "case (default: xavier)")
    _add_option(course, "-nhl", "--num_layers", type=_non_negative_int, metavar="N",
                help="number of hidden layers of --hidden_size units each; 0 gives softmax "
                     "regression; ignored when --hidden_sizes is given (default: "
                     f"{DEFAULT_NUM_LAYERS}; with neither -nhl nor -sz the network has the "
                     f"hidden layers {_default_text('hidden_sizes')})")
    _add_option(course, "-sz", "--hidden_size", type=_positive_int, metavar="UNITS",
                help="units in each hidden layer with -nhl; ignored when --hidden_sizes is "
                     f"given (default: {DEFAULT_HIDDEN_SIZE} with -nhl)")
    _add_option(course, "-a", "--activation", type=types["activation"],
                metavar="{identity,sigmoid,tanh,ReLU,...}",
                help="hidden-layer activation: identity, sigmoid, tanh, ReLU or leaky_relu, any "
                     "letter case (default: relu)")

    more = parser.add_argument_group("more settings")
    _add_option(more, "--hidden_sizes", type=_positive_int, nargs="+", metavar="UNITS",
                help="units of each hidden layer, first to last, e.g. --hidden_sizes 128 64; "
                     "takes precedence over -nhl and -sz "
                     f"(default: {_default_text('hidden_sizes')})")
    _add_option(more, "--data-dir", metavar="DIR",
                help="train on your own IDX folder (train-images-idx3-ubyte[.gz], "
                     "train-labels-idx1-ubyte[.gz] and the t10k- pair) instead of -d "
                     "(default: none)")
    _add_option(more, "--val-fraction", type=_validation_fraction, metavar="FRACTION",
                help="fraction of the training split held out for validation, stratified by "
                     f"class; 0 turns validation off (default: {_default_text('val_fraction')})")
    _add_option(more, "--patience", type=_positive_int, metavar="EPOCHS",
                help="stop after this many epochs without a lower validation loss, then "
                     "restore the best weights (default: off)")
    _add_option(more, "--lr-schedule", type=types["lr_schedule"],
                metavar="{constant,step,exponential,cosine}",
                help="learning rate by epoch: constant; step (×0.1 every 10 epochs); "
                     "exponential (×0.9 per epoch); cosine (annealed to 0 over --epochs) "
                     f"(default: {_default_text('lr_schedule')})")
    _add_option(more, "--seed", type=_non_negative_int, metavar="SEED",
                help="seed of the validation split, the initial weights and the shuffling "
                     f"(default: {_default_text('seed')})")
    _add_option(more, "--threads", type=_positive_int, metavar="N",
                help="threads during training, for the matrix products or, on larger "
                     "networks and batches, for blocks of each batch's rows, and for the "
                     "optimizer's update; results repeat bitwise only with the same count "
                     "(default: the BLAS's thread count, normally all cores)")
    _add_option(more, "--diagnostics", action="store_true", default=None,
                help="record per-layer gradient norms, dead and saturated units after every "
                     "epoch in diagnostics.json and diagnostics.csv; draw them with "
                     "`chainrule plot-diagnostics RUN_DIR`")
    _add_option(more, "--limit-train", type=_positive_int, metavar="N",
                help="quick runs: use only the first N images of the training split, before "
                     "the validation split (default: all)")
    _add_option(more, "--limit-test", type=_positive_int, metavar="N",
                help="quick runs: evaluate on the first N images of the test split "
                     "(default: all)")

    run = parser.add_argument_group("run directory and output")
    _add_option(run, "--output-dir", metavar="DIR",
                help="the run directory to write (default: runs/<dataset>-<timestamp>); a "
                     "non-empty one is rejected unless --overwrite or --resume is given")
    _add_option(run, "--overwrite", action="store_true", default=None,
                help="replace the run files in a non-empty --output-dir; other files there "
                     "are kept")
    _add_option(run, "--resume", metavar="RUN_DIR",
                help="continue the run in RUN_DIR from its last checkpoint; -e is the new "
                     "total number of epochs (a cosine schedule is then spread over the new "
                     "total), and every other setting must match its config.json or be left out "
                     "(default: start a new run)")
    _add_option(run, "--quiet", action="store_true", default=None,
                help="print nothing but errors: no progress bar, epoch lines or summary")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``chainrule`` parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="Train, evaluate and use feedforward networks whose backpropagation is "
                    "written by hand in NumPy.",
        epilog="exit status: 0 success, 1 error, 2 invalid arguments, 3 training diverged, "
               "130 interrupted (Ctrl-C)",
        formatter_class=_HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = subparsers.add_parser(
        "train", help="train a network and write a run directory",
        description="Train a network on MNIST, Fashion-MNIST or your own IDX folder and write "
                    "config.json, model.npz/model.json, checkpoint.npz, history.csv, "
                    "metrics.json (test split) and the figures curves.png, "
                    "confusion_matrix.png and samples.png into the run directory.",
        epilog="exit status: 0 success, 1 error, 2 invalid arguments, 3 training diverged, "
               "130 interrupted (Ctrl-C; resume with --resume RUN_DIR)",
        formatter_class=_HelpFormatter, allow_abbrev=False,
    )
    add_train_arguments(train)
    train.set_defaults(handler=_train_command)

    evaluate = subparsers.add_parser(
        "evaluate", help="evaluate a saved model on a test split",
        description="Evaluate a trained model on the test split of its data set (or of -d or "
                    "--data-dir), print the metrics and write evaluation-<dataset>.json next to "
                    "the model. metrics.json is never overwritten.",
        formatter_class=_HelpFormatter, allow_abbrev=False,
    )
    evaluate.add_argument("model", metavar="RUN_DIR_OR_MODEL",
                          help="a run directory, or its model.json or model.npz")
    source = evaluate.add_mutually_exclusive_group()
    _add_option(source, "-d", "--dataset", type=_choice_types()["dataset"],
                metavar="{mnist,fashion_mnist}",
                help="built-in data set to evaluate on (default: the one the model was trained on)")
    _add_option(source, "--data-dir", metavar="DIR",
                help="IDX folder whose t10k- (test) files to evaluate on")
    _add_option(evaluate, "--limit-test", type=_positive_int, metavar="N",
                help="quick runs: evaluate on the first N test images (default: all)")
    evaluate.set_defaults(handler=_evaluate_command)

    predict = subparsers.add_parser(
        "predict", help="classify 28x28 grayscale images with a saved model",
        description="Classify images: PNG files (grayscale or color, converted to gray) or "
                    ".npy arrays of shape (28, 28), (n, 28, 28), (784,) or (n, 784). uint8 "
                    "arrays hold pixel values 0-255, float arrays values in [0, 1]. Prints "
                    "the file, the class and its probability, one line per image.",
        formatter_class=_HelpFormatter, allow_abbrev=False,
    )
    predict.add_argument("model", metavar="MODEL",
                         help="a run directory, or its model.json or model.npz")
    predict.add_argument("files", metavar="FILE", nargs="+", help="PNG or .npy files")
    predict.add_argument("--invert", action="store_true",
                         help="invert the gray levels, for dark strokes on light paper (the "
                              "data sets have light strokes on a dark background)")
    _add_option(predict, "--top", type=_positive_int, default=1, metavar="K",
                help="print the K most probable classes of each image (default: 1)")
    predict.set_defaults(handler=_predict_command)

    for module_name in ("chainrule.cli_diagnostics", "chainrule.cli_sweep"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # Only the module itself may be missing; a missing dependency inside it is a
            # real error and propagates.
            if error.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


# --------------------------------------------------------------------------- configuration


_SETTING_KEYS = tuple(TRAIN_DEFAULTS)


def _resolve_hidden_sizes(args: argparse.Namespace, base: dict[str, Any]) -> list[int]:
    """Apply the precedence --hidden_sizes, then -nhl/-sz, then ``base``'s architecture."""
    if args.hidden_sizes is not None:
        return list(args.hidden_sizes)
    if args.num_layers is not None or args.hidden_size is not None:
        count = args.num_layers if args.num_layers is not None else base["num_layers"]
        size = args.hidden_size if args.hidden_size is not None else base["hidden_size"]
        if size is None:
            size = DEFAULT_HIDDEN_SIZE
        return [size] * count
    return list(base["hidden_sizes"])


def _finish_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill in the values derived from others: architecture counts and the learning rate."""
    from chainrule import optimizers

    sizes = list(config["hidden_sizes"])
    config["hidden_sizes"] = sizes
    config["num_layers"] = len(sizes)
    config["hidden_size"] = sizes[0] if sizes and all(s == sizes[0] for s in sizes) else None
    if config["learning_rate"] is None:
        config["learning_rate"] = optimizers.get(config["optimizer"]).learning_rate
    if config["data_dir"] is not None:
        config["data_dir"] = str(Path(config["data_dir"]).expanduser().resolve())
        config["dataset"] = None
    if config["patience"] is not None and config["val_fraction"] == 0:
        raise _UsageError(
            "--patience needs validation data, but --val-fraction is 0; give a fraction such "
            "as 0.1 or drop --patience"
        )
    return config


def build_train_config(args: argparse.Namespace) -> dict[str, Any]:
    """Resolve parsed ``train`` arguments into the complete settings of a run.

    Options left out take :data:`TRAIN_DEFAULTS`, or with ``--resume`` the values in the
    run's ``config.json``. With ``--resume``, every given option other than ``-e`` that
    differs from ``config.json`` is an error, and the message names each one.

    Returns
    -------
    dict
        Every key of :data:`TRAIN_DEFAULTS` with its resolved value: canonical names,
        ``hidden_sizes`` as a list, the optimizer's default learning rate filled in and
        ``data_dir`` as an absolute path. This is what ``config.json`` stores, less its
        ``format_version``.

    Raises
    ------
    CommandError
        For contradicting options or a resume conflict.
    """
    resume = getattr(args, "resume", None)
    if resume is None:
        base = dict(TRAIN_DEFAULTS)
    else:
        base = _read_run_config(Path(resume))
        output_dir = getattr(args, "output_dir", None)
        if output_dir is not None and Path(output_dir).resolve() != Path(resume).resolve():
            raise _UsageError(
                f"--output-dir {output_dir} and --resume {resume} name different directories; "
                "a resumed run continues in its own directory, so drop --output-dir"
            )
        if getattr(args, "overwrite", None):
            raise _UsageError("--overwrite and --resume contradict each other; pick one")

    config = dict(base)
    for key in _SETTING_KEYS:
        if key in ("num_layers", "hidden_size", "hidden_sizes", "dataset", "data_dir"):
            continue
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    config["hidden_sizes"] = _resolve_hidden_sizes(args, base)
    if getattr(args, "data_dir", None) is not None:
        config["data_dir"] = args.data_dir
    elif getattr(args, "dataset", None) is not None:
        config["dataset"] = args.dataset
        config["data_dir"] = None
    if getattr(args, "data_dir", None) is not None and getattr(args, "dataset", None) is not None:
        raise _UsageError(
            "-d/--dataset and --data-dir both name the training data; give only one"
        )
    config = _finish_config(config)

    if resume is not None:
        _check_resume_conflicts(args, base, config, Path(resume))
    return config


def _given_settings(args: argparse.Namespace) -> set[str]:
    given = {key for key in _SETTING_KEYS if getattr(args, key, None) is not None}
    if given & {"num_layers", "hidden_size"}:
        given.add("hidden_sizes")
    given -= {"num_layers", "hidden_size"}
    if "data_dir" in given:
        given.add("dataset")
    return given


def _check_resume_conflicts(
    args: argparse.Namespace, stored: dict[str, Any], config: dict[str, Any], run_dir: Path
) -> None:
    conflicts = []
    for key in sorted(_given_settings(args) - set(_RESUMABLE_CHANGES)):
        if config[key] != stored.get(key):
            conflicts.append(f"{key} {_show(config[key])} (the run has {_show(stored.get(key))})")
    if conflicts:
        raise _UsageError(
            f"--resume {run_dir}: these settings differ from {run_dir / 'config.json'}: "
            + "; ".join(conflicts)
            + ". Leave them out to keep the run's values, or start a new run."
        )


def _show(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _read_run_config(run_dir: Path) -> dict[str, Any]:
    """Read a run's settings from its config.json, completed with today's defaults."""
    path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise CommandError(f"run directory {run_dir} not found; --resume needs a directory that "
                           "`chainrule train` wrote")
    if not path.is_file():
        raise CommandError(f"{path} not found; --resume needs a run directory that `chainrule "
                           "train` wrote")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CommandError(
            f"{path} is not valid JSON ({error}); the run cannot be resumed"
        ) from None
    if not isinstance(stored, dict) or stored.get("format_version") != CONFIG_FORMAT_VERSION:
        raise CommandError(
            f"{path} is not a chainrule run configuration of format {CONFIG_FORMAT_VERSION}"
        )
    settings = dict(TRAIN_DEFAULTS)
    settings.update({key: stored[key] for key in _SETTING_KEYS if key in stored})
    return settings


def train_config_from_argv(argv: Sequence[str]) -> dict[str, Any]:
    """Parse ``chainrule train`` arguments and return the resolved settings.

    Raises ``ValueError`` for invalid arguments, with argparse's message, instead of
    exiting. ``--output-dir``, ``--resume`` and the other run options are parsed but are
    not part of the returned settings.
    """
    parser = _RaisingParser(prog="chainrule train", allow_abbrev=False, add_help=False)
    add_train_arguments(parser)
    args = parser.parse_args(list(argv))
    try:
        return build_train_config(args)
    except CommandError as error:
        raise ValueError(str(error)) from None


# --------------------------------------------------------------------------- data


class _RunData:
    """The arrays of a run: preprocessed training, validation and test splits."""

    def __init__(self, config: dict[str, Any]):
        import numpy

        from chainrule import datasets
        from chainrule.preprocessing import LabelMapping, Preprocessor

        if config["data_dir"] is not None:
            folder = Path(config["data_dir"])
            if not folder.is_dir():
                problem = "is a file, not a folder" if folder.exists() else "does not exist"
                raise CommandError(
                    f"data folder {folder} {problem}; --data-dir needs a folder with the IDX files "
                    "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                    "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]"
                )
            self.name = folder.name
            train = datasets.load_dataset(folder, "train")
            test = datasets.load_dataset(folder, "test", label_mapping=train.label_mapping)
            train_images, train_labels = train.features, train.labels
            test_images, test_labels = test.features, test.labels
            self.label_mapping = train.label_mapping
            self.class_names = list(train.class_names)
        else:
            self.name = config["dataset"]
            train_images, train_labels = datasets.load(self.name, "train")
            test_images, test_labels = datasets.load(self.name, "test")
            self.class_names = datasets.class_names(self.name)
            # The built-in labels are already the class indices 0..9.
            self.label_mapping = LabelMapping(numpy.arange(len(self.class_names)))
        if config["limit_train"] is not None:
            train_images = train_images[:config["limit_train"]]
            train_labels = train_labels[:config["limit_train"]]
        if config["limit_test"] is not None:
            test_images = test_images[:config["limit_test"]]
            test_labels = test_labels[:config["limit_test"]]

        # Independent streams for the split, the initial weights and the shuffling, all
        # derived from the one --seed.
        split_seed, weights_seed, shuffle_seed = numpy.random.SeedSequence(config["seed"]).spawn(3)
        self.weights_rng = numpy.random.default_rng(weights_seed)
        self.shuffle_rng = numpy.random.default_rng(shuffle_seed)

        if config["val_fraction"] > 0:
            train_rows, validation_rows = datasets.stratified_split(
                train_labels, config["val_fraction"], seed=numpy.random.default_rng(split_seed)
            )
        else:
            train_rows, validation_rows = numpy.arange(train_labels.shape[0]), None

        self.preprocessor = Preprocessor(scale=True, standardize=False)
        self.X_train = self.preprocessor.fit_transform(train_images[train_rows])
        self.y_train = train_labels[train_rows]
        self.validation = None
        if validation_rows is not None:
            self.validation = (
                self.preprocessor.transform(train_images[validation_rows]),
                train_labels[validation_rows],
            )
        self.test_images = test_images
        self.X_test = self.preprocessor.transform(test_images)
        self.y_test = test_labels
        self.n_features = self.X_train.shape[1]


# --------------------------------------------------------------------------- run directory


def default_run_directory(config: dict[str, Any], root: str | os.PathLike = "runs") -> Path:
    """Return ``runs/<dataset>-<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3`` … if it exists)."""
    name = config["dataset"] or Path(config["data_dir"]).name
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = Path(root) / f"{name}-{stamp}"
    counter = 2
    while candidate.exists():
        candidate = Path(root) / f"{name}-{stamp}-{counter}"
        counter += 1
    return candidate


def _check_run_directory(run_dir: Path, *, overwrite: bool, resume: bool) -> None:
    if resume:
        if not (run_dir / "checkpoint.npz").is_file():
            raise CommandError(
                f"{run_dir / 'checkpoint.npz'} not found; the run finished no epoch to resume "
                "from, so start it again with --overwrite"
            )
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise CommandError(f"--output-dir {run_dir} is a file; name a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not overwrite:
        raise CommandError(
            f"output directory {run_dir} is not empty; pass --overwrite to replace its run "
            f"files, --resume {run_dir} to continue the run there, or choose another --output-dir"
        )


def _remove_run_files(run_dir: Path) -> None:
    if not run_dir.is_dir():
        return
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for pattern in ("evaluation-*.json", "diagnostics.json", "diagnostics.csv"):
        for path in run_dir.glob(pattern):
            path.unlink()


def _write_json(path: Path, content: dict[str, Any]) -> None:
    from chainrule.training import _json_ready, atomic_write_text

    atomic_write_text(path, json.dumps(_json_ready(content), indent=2) + "\n")


def write_history(path: str | os.PathLike, history: Iterable[dict[str, float]]) -> None:
    """Write ``history.csv`` with the columns of ``HISTORY_COLUMNS``, values at full precision."""
    from chainrule.training import HISTORY_COLUMNS, atomic_write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in history:
        # repr() is the shortest text that reads back as the same float, so a history
        # read from the file compares bitwise with the one in memory.
        writer.writerow(
            [int(row["epoch"])] + [repr(float(row[column])) for column in HISTORY_COLUMNS[1:]]
        )
    atomic_write_text(path, buffer.getvalue())


# --------------------------------------------------------------------------- training


def run_training(
    config: dict[str, Any],
    output_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    quiet: bool = False,
    callbacks: Sequence[Callable] = (),
    log: Callable[[str], None] | None = None,
    figures: bool = True,
) -> Path:
    """Train with resolved settings and write the run directory; return its path.

    Parameters
    ----------
    config : dict
        Settings from :func:`build_train_config` or :func:`train_config_from_argv`.
    output_dir : path, optional
        The run directory; ``runs/<dataset>-<timestamp>`` under the current folder when
        None. A non-empty directory is rejected unless ``overwrite`` or ``resume``.
    overwrite : bool
        Delete the run files (:data:`RUN_FILES` and ``evaluation-*.json``) in
        ``output_dir`` first; other files are kept.
    resume : bool
        Continue from ``output_dir/checkpoint.npz``; ``config["epochs"]`` is the new total.
    quiet : bool
        Print nothing (no progress bar, epoch lines or summary).
    callbacks : sequence of callables
        Called as ``callback(trainer, row)`` after each epoch, after ``history.csv`` is
        written; an exception raised there (for example a sweep pruning the trial) ends
        training and propagates.
    log : callable, optional
        Receives the epoch lines and the summary lines; ``print`` by default.
    figures : bool
        Write ``curves.png``, ``confusion_matrix.png`` and ``samples.png``.

    Raises
    ------
    CommandError
        For a rejected directory, missing data or a run that cannot be resumed.
    chainrule.training.TrainingDiverged, chainrule.training.TrainingInterrupted
        From the trainer; the checkpoint of the last finished epoch stays in place.
    """
    from chainrule.network import Network
    from chainrule import optimizers
    from chainrule.training import Trainer

    log = log if log is not None else (lambda line: print(line, flush=True))
    config = dict(config)
    run_dir = Path(output_dir) if output_dir is not None else default_run_directory(config)
    _check_run_directory(run_dir, overwrite=overwrite, resume=resume)

    data = _RunData(config)
    network = Network(
        [data.n_features, *config["hidden_sizes"], len(data.class_names)],
        activation=config["activation"],
        weight_init=config["weight_init"],
        loss=config["loss"],
        weight_decay=config["weight_decay"],
        seed=data.weights_rng,
    )
    hyperparameters = {
        name: config[name] for name in optimizers.hyperparameter_names(config["optimizer"])
    }
    optimizer = optimizers.get(config["optimizer"], **hyperparameters)

    tracker = None
    history_path = run_dir / "history.csv"

    def write_history_callback(trainer, row):
        write_history(history_path, trainer.history)

    trainer = Trainer(
        network,
        optimizer,
        batch_size=config["batch_size"],
        epochs=config["epochs"],
        schedule=config["lr_schedule"],
        patience=config["patience"],
        seed=data.shuffle_rng,
        checkpoint_path=run_dir / "checkpoint.npz",
        quiet=quiet,
        threads=config["threads"],
        callbacks=[write_history_callback],
        log=log,
    )

    if resume:
        trainer.load_checkpoint(run_dir / "checkpoint.npz")
        if len(trainer.history) > config["epochs"]:
            raise CommandError(
                f"the run in {run_dir} has already trained {len(trainer.history)} epochs; "
                f"-e is the total, so give at least -e {len(trainer.history)}"
            )

    # W&B starts before anything is written, so a failed login leaves no half-made run.
    if config["wandb_project"] is not None:
        from chainrule.tracking import WandbTracker

        tracker = WandbTracker.start(
            project=config["wandb_project"], entity=config["wandb_entity"], config=config,
            name=run_dir.name,
        )
        trainer.callbacks.append(tracker)
    trainer.callbacks.extend(callbacks)

    if not resume:
        if overwrite:
            _remove_run_files(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(
        run_dir / "config.json",
        {"format_version": CONFIG_FORMAT_VERSION, "chainrule_version": __version__, **config},
    )
    if config["diagnostics"]:
        trainer.callbacks.insert(1, _diagnostics_recorder(run_dir, network, data, config, trainer))

    try:
        trainer.fit(data.X_train, data.y_train, validation_data=data.validation)
        metrics = _finish_run(run_dir, config, data, network, trainer, figures, tracker)
    except BaseException:
        if tracker is not None:
            tracker.finish(exit_code=1)
        raise
    if tracker is not None:
        tracker.finish()

    if not quiet:
        log(
            f"test_loss {metrics['loss']:.4f}  test_accuracy {metrics['accuracy']:.4f}  "
            f"test_f1 {metrics['f1']:.4f}  ({data.X_test.shape[0]} test images)"
        )
        log(f"run directory: {run_dir}")
    return run_dir


def _diagnostics_recorder(run_dir, network, data, config, trainer):
    """Return the --diagnostics callback; on resume it keeps the rows of the earlier epochs."""
    from chainrule.diagnostics import load_diagnostics, recorder_for_run

    earlier = []
    if trainer.history and (run_dir / "diagnostics.json").is_file():
        completed = len(trainer.history)
        earlier = [row for row in load_diagnostics(run_dir)["rows"] if row["epoch"] <= completed]
    recorder = recorder_for_run(run_dir, network, data.X_train, data.y_train, seed=config["seed"])
    if trainer.history:
        # recorder_for_run measured the restored network as epoch 0; the saved rows
        # (epoch 0 included) replace that measurement.
        recorder.rows = earlier
        recorder.save(run_dir)
    return recorder


def _finish_run(run_dir, config, data, network, trainer, figures, tracker) -> dict[str, Any]:
    """Save the model, the test metrics and the figures of a finished training run."""
    from chainrule.metrics import evaluate, to_json_dict
    from chainrule.training import save_model

    write_history(run_dir / "history.csv", trainer.history)
    metadata = {
        "dataset": config["dataset"],
        "data_dir": config["data_dir"],
        "epochs_trained": len(trainer.history),
        "best_epoch": trainer.best_epoch,
        "stopped_early": trainer.stopped_early,
        "config": config,
    }
    save_model(
        run_dir, network, preprocessor=data.preprocessor, label_mapping=data.label_mapping,
        class_names=data.class_names, metadata=metadata,
    )

    result = evaluate(network, data.X_test, data.y_test)
    metrics = to_json_dict(result)
    metrics.update({"dataset": data.name, "split": "test", "n_samples": int(data.y_test.shape[0]),
                    "class_names": data.class_names})
    _write_json(run_dir / "metrics.json", metrics)

    predictions = result["logits"].argmax(axis=1)
    if figures:
        _write_figures(run_dir, trainer.history, result, data, predictions)
    if tracker is not None:
        tracker.log_results(
            metrics, labels=data.y_test, predictions=predictions, class_names=data.class_names,
            samples_path=run_dir / "samples.png" if figures else None,
            confusion_path=run_dir / "confusion_matrix.png" if figures else None,
        )
    return metrics


def _write_figures(run_dir, history, result, data, predictions) -> None:
    from chainrule import plots
    from chainrule.losses import softmax

    plots.plot_curves(history, run_dir / "curves.png")
    plots.plot_confusion_matrix(
        result["confusion_matrix"], data.class_names, run_dir / "confusion_matrix.png",
        title=f"{data.name} test split",
    )
    probabilities = softmax(result["logits"]).max(axis=1)
    plots.plot_samples(
        data.test_images, data.y_test, data.class_names, run_dir / "samples.png",
        predictions=predictions, probabilities=probabilities,
    )


def _train_command(args: argparse.Namespace) -> int:
    config = build_train_config(args)
    run_training(
        config,
        output_dir=args.resume if args.resume is not None else args.output_dir,
        overwrite=bool(args.overwrite),
        resume=args.resume is not None,
        quiet=bool(args.quiet),
    )
    return EXIT_OK


# --------------------------------------------------------------------------- evaluate


def _load_model(path: str):
    from chainrule.training import load_model

    if not Path(path).exists():
        raise CommandError(f"model {path} not found; pass a run directory or its model.json")
    return load_model(path)


def _evaluate_command(args: argparse.Namespace) -> int:
    from chainrule import datasets
    from chainrule.metrics import evaluate, to_json_dict

    model = _load_model(args.model)
    model_dir = Path(args.model) if Path(args.model).is_dir() else Path(args.model).parent
    metadata = model.metadata or {}
    if args.data_dir is not None:
        folder = Path(args.data_dir)
        if not folder.is_dir():
            raise CommandError(f"data folder {folder} does not exist; --data-dir needs a folder "
                               "with t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]")
        images, labels = datasets.load_folder(folder, "test")
        name = folder.name
    elif args.dataset is not None:
        images, labels = datasets.load(args.dataset, "test")
        name = args.dataset
    elif metadata.get("data_dir"):
        images, labels = datasets.load_folder(metadata["data_dir"], "test")
        name = Path(metadata["data_dir"]).name
    elif metadata.get("dataset"):
        images, labels = datasets.load(metadata["dataset"], "test")
        name = metadata["dataset"]
    else:
        raise CommandError(f"{args.model} does not record its data set; pass -d or --data-dir")
    if args.limit_test is not None:
        images, labels = images[:args.limit_test], labels[:args.limit_test]

    result = evaluate(model, images, labels)
    class_names = model.class_names or [str(c) for c in range(model.network.n_classes)]
    metrics = to_json_dict(result)
    metrics.update({"dataset": name, "split": "test", "n_samples": int(labels.shape[0]),
                    "class_names": class_names})
    output = model_dir / f"evaluation-{name}.json"
    _write_json(output, metrics)

    print(f"{name} test split, {labels.shape[0]} images, model {args.model}")
    for key in ("loss", "accuracy", "precision", "recall", "f1"):
        suffix = " (macro)" if key in ("precision", "recall", "f1") else ""
        print(f"  {key:<10} {metrics[key]:.4f}{suffix}")
    print("  per-class accuracy:")
    width = max(len(str(n)) for n in class_names)
    for class_name, value in zip(class_names, metrics["per_class_accuracy"]):
        print(f"    {str(class_name):<{width}}  {value:.4f}")
    print(f"wrote {output}")
    return EXIT_OK


# --------------------------------------------------------------------------- predict


def _grayscale(image, path: Path, invert: bool):
    """Convert a PNG read by matplotlib (values in [0, 1]) to gray levels in [0, 1]."""
    import numpy

    if image.ndim == 2:
        gray, alpha = image, None
    elif image.ndim == 3 and image.shape[2] in (2, 3, 4):
        channels = image.shape[2]
        color = image[..., :1] if channels == 2 else image[..., :3]
        alpha = image[..., -1] if channels in (2, 4) else None
        # ITU-R BT.601 luma weights, the ones Pillow's convert("L") uses.
        gray = color[..., 0] if channels == 2 else color @ numpy.array([0.299, 0.587, 0.114])
    else:
        raise CommandError(f"{path} has image shape {image.shape}; expected a grayscale or RGB PNG")
    if invert:
        gray = 1.0 - gray
    if alpha is not None:
        # Transparent pixels become background (0 after any inversion), so a drawing on a
        # transparent canvas reads the same as one on a dark background.
        gray = gray * alpha
    return gray


def _read_images(path: Path, invert: bool, side: int) -> tuple[list[str], Any]:
    """Return display names and raw pixel values (0..255 floats) of the images in ``path``."""
    import numpy

    if not path.is_file():
        raise CommandError(f"image file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".png":
        from matplotlib import image as matplotlib_image

        try:
            pixels = matplotlib_image.imread(path, format="png")
        except (OSError, ValueError, SyntaxError) as error:
            raise CommandError(f"{path} is not a readable PNG image ({error})") from None
        pixels = numpy.asarray(pixels, dtype=numpy.float64)
        if pixels.ndim >= 2 and pixels.shape[:2] != (side, side):
            raise CommandError(
                f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels, but the model takes "
                f"{side}x{side} grayscale images; resize it to {side}x{side} first"
            )
        gray = _grayscale(pixels, path, invert)
        return [str(path)], (gray * 255.0)[None, :, :]

    if suffix == ".npy":
        try:
            array = numpy.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise CommandError(f"{path} is not a readable .npy array ({error})") from None
        shape = array.shape
        if shape == (side, side) or shape == (side * side,):
            array = array.reshape(1, side, side)
        elif (len(shape) == 3 and shape[1:] == (side, side)) or (
            len(shape) == 2 and shape[1] == side * side
        ):
            array = array.reshape(shape[0], side, side)
        else:
            raise CommandError(
                f"{path} contains an array of shape {shape}, but the model takes {side}x{side} "
                f"images: shape ({side}, {side}), (n, {side}, {side}), ({side * side},) or "
                f"(n, {side * side})"
            )
        if array.dtype == numpy.uint8:
            values = array.astype(numpy.float64)
        elif array.dtype.kind == "f":
            values = array.astype(numpy.float64)
            if not numpy.isfinite(values).all() or values.min() < 0 or values.max() > 1:
                raise CommandError(
                    f"{path} contains floats in [{values.min():g}, {values.max():g}]; float images "
                    "must lie in [0, 1] (or save uint8 pixel values 0-255)"
                )
            values = values * 255.0
        else:
            raise CommandError(
                f"{path} has dtype {array.dtype}; use uint8 (0-255) or floats in [0, 1]"
            )
        if invert:
            values = 255.0 - values
        if values.shape[0] == 1:
            names = [str(path)]
        else:
            names = [f"{path}[{i}]" for i in range(values.shape[0])]
        return names, values

    raise CommandError(
        f"{path}: unsupported file type {suffix or '(none)'!r}; pass PNG or .npy files"
    )


def _predict_command(args: argparse.Namespace) -> int:
    import numpy

    model = _load_model(args.model)
    n_features = model.network.n_features
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise CommandError(
            f"the model takes {n_features} features per example, which is not a square image; "
            "predict classifies square grayscale images only"
        )
    names, images = [], []
    for file in args.files:
        file_names, values = _read_images(Path(file), args.invert, side)
        names.extend(file_names)
        images.append(values)
    raw = numpy.concatenate(images, axis=0)
    probabilities = model.predict_proba(raw)
    class_names = model.class_names or [str(c) for c in range(model.network.n_classes)]
    top = min(args.top, len(class_names))
    for name, row in zip(names, probabilities):
        order = numpy.argsort(-row, kind="stable")[:top]
        ranked = "  ".join(f"{class_names[i]} {row[i]:.4f}" for i in order)
        print(f"{name}  {ranked}")
    return EXIT_OK


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``chainrule`` command line and return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE

    from chainrule.tracking import TrackingError
    from chainrule.training import TrainingDiverged, TrainingInterrupted

    handler = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print(f"chainrule: error: the command {args.command!r} has no handler", file=sys.stderr)
        return EXIT_USAGE
    debug = os.environ.get("CHAINRULE_DEBUG", "") not in ("", "0")
    try:
        return handler(args)
    except _UsageError as error:
        parser.print_usage(sys.stderr)
        print(f"chainrule {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as error:
        print(f"chainrule: error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except TrainingInterrupted as error:
        run_dir = Path(error.checkpoint_path).parent if error.checkpoint_path else None
        hint = f"; continue with: chainrule train --resume {run_dir}" if run_dir else ""
        print(f"chainrule: {error}{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CommandError, TrackingError, ValueError, OSError) as error:
        if debug:
            raise
        print(f"chainrule: error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
