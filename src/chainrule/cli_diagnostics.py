"""Subcommands that look inside networks: gradient checks, explain, and diagnostic figures.

:func:`register` adds them to the ``chainrule`` command line:

=====================  ==================================================================
``gradcheck``          backpropagation against central differences, per weight and bias array
``explain``            one test example's forward pass and backward walk, and a figure
``failures``           the test images a model gets most confidently wrong
``plot-diagnostics``   the per-epoch diagnostics that ``chainrule train --diagnostics`` saved
``compare-losses``     cross-entropy against squared error, same network and seed
``compare-optimizers`` the optimizers against one another
``compare-activations``  per-layer gradient norms of a sigmoid and a ReLU stack
``accuracy-curves``    training against test accuracy over the epochs
``optimizer-paths``    optimizers' paths over 2-D error surfaces
=====================  ==================================================================

Each subcommand sets ``handler``, a function ``handler(args) -> int`` that returns the exit
status: 0 for success, 1 when a gradient check fails. Invalid input raises ``ValueError``
with a message naming the value and the fix; ``chainrule.cli.main`` prints it and exits
with status 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chainrule.argument_types import (
    non_negative_float as _non_negative_float,
    non_negative_int as _non_negative_int,
    positive_float as _positive_float,
    positive_int as _positive_int,
)
from chainrule.backend import xp

__all__ = ["register", "build_gradcheck_network", "gradcheck_pairs"]

DEFAULT_GRADCHECK_LAYER_SIZES = (4, 5, 5, 3)
DEFAULT_GRADCHECK_BATCH = 6
# Defaults of the comparison commands: a class-stratified subset and few epochs, so that
# each command trains in about a minute, and enough data that the curves separate.
DEFAULT_TRAIN_SIZE = 5000
DEFAULT_TEST_SIZE = 1000
DEFAULT_COMPARISON_EPOCHS = 5


# --------------------------------------------------------------------------- argument types










def _size_list(text: str) -> list[int]:
    """Parse ``784,64,10`` or one size of a space-separated list into positive ints."""
    sizes = []
    for part in text.split(","):
        if part.strip():
            sizes.append(_positive_int(part.strip()))
    if not sizes:
        raise argparse.ArgumentTypeError(f"expected layer sizes such as 4,5,3, got {text!r}")
    return sizes


def _flatten(lists) -> list[int]:
    return [size for group in lists for size in group]


def _name_type(kind: str, registry, *, allow_all: bool = False):
    """Return an argparse type that accepts a name of ``registry`` in any case (or ``all``)."""

    def parse(text: str) -> str:
        if allow_all and text.strip().lower() == "all":
            return "all"
        try:
            return registry.canonical_name(text)
        except (ValueError, TypeError):
            choices = ", ".join((["all"] if allow_all else []) + registry.names())
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {text!r}; choose from {choices}"
            ) from None

    return parse


def _optimizer_name(text: str) -> str:
    from chainrule import optimizers

    name = text.strip().lower()
    if name not in optimizers.names():
        raise argparse.ArgumentTypeError(
            f"unknown optimizer {text!r}; choose from {', '.join(optimizers.names())}"
        )
    return name


def _learning_rate_pair(text: str) -> tuple[str, float]:
    name, separator, rate = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(
            f"expected NAME=RATE such as sgd=0.1, got {text!r}"
        )
    return _optimizer_name(name), _positive_float(rate)


def _surface_name(text: str) -> str:
    from chainrule.surfaces import SURFACES

    name = text.strip().lower()
    if name not in SURFACES:
        raise argparse.ArgumentTypeError(
            f"unknown surface {text!r}; choose from {', '.join(SURFACES)}"
        )
    return name


# --------------------------------------------------------------------------- gradcheck


def build_gradcheck_network(layer_sizes, activation: str, loss: str, weight_decay: float, seed: int):
    """Return the float64 network that ``chainrule gradcheck`` checks for one pair.

    The handler builds every network through this function, so that a test can replace
    it (for example with a network whose activation has a wrong derivative).
    """
    from chainrule.network import Network

    return Network(
        layer_sizes, activation=activation, loss=loss, weight_decay=weight_decay, seed=seed,
        dtype="float64",
    )


def gradcheck_pairs(activation: list[str], loss: list[str]) -> list[tuple[str, str]]:
    """Expand ``all`` and return every (activation, loss) pair to check, in a stable order."""
    from chainrule import activations, losses

    activation_names = activations.names() if "all" in activation else list(dict.fromkeys(activation))
    loss_names = losses.names() if "all" in loss else list(dict.fromkeys(loss))
    return [(a, l) for a in activation_names for l in loss_names]


def _gradcheck_command(args: argparse.Namespace) -> int:
    from chainrule.gradient_check import gradcheck

    layer_sizes = _flatten(args.layer_sizes) if args.layer_sizes else list(DEFAULT_GRADCHECK_LAYER_SIZES)
    pairs = gradcheck_pairs(args.activation, args.loss)
    if len(layer_sizes) == 2:
        # Without a hidden layer the activation is never applied, so one per loss suffices.
        pairs = list(dict.fromkeys((pairs[0][0], loss) for _, loss in pairs))
    rng = xp.random.default_rng(args.seed)
    X = rng.standard_normal((args.batch, layer_sizes[0]))
    labels = rng.integers(0, layer_sizes[-1], size=args.batch)
    sizes_text = "-".join(str(n) for n in layer_sizes)

    failed = []
    for activation, loss in pairs:
        # The module-level name is looked up on every call, so tests can replace it.
        network = build_gradcheck_network(layer_sizes, activation, loss, args.weight_decay, args.seed)
        report = gradcheck(network, X, labels, step=args.step, tolerance=args.tolerance, seed=args.seed)
        hidden = activation if len(layer_sizes) > 2 else "none (no hidden layer)"
        print(
            f"activation {hidden}, loss {loss}: layer sizes {sizes_text}, batch {args.batch}, "
            f"weight decay {args.weight_decay:g}, seed {args.seed}"
        )
        print(report.format_table())
        print()
        if not report.passed:
            failed.append(f"{activation} × {loss}")

    if failed:
        print(f"gradient check FAILED: {len(failed)} of {len(pairs)} activation × loss pairs "
              f"failed ({', '.join(failed)})")
        return 1
    print(f"gradient check passed: {len(pairs)} of {len(pairs)} activation × loss pairs")
    return 0


def _add_gradcheck(subparsers) -> None:
    from chainrule import activations, losses

    parser = subparsers.add_parser(
        "gradcheck",
        help="check backpropagation against central differences",
        description="Compare the hand-written backpropagation with float64 central "
                    "differences on a small random network and batch. Prints one table per "
                    "activation × loss pair, one row per weight and bias array, with the "
                    "error, the entries checked, the entries skipped because a ReLU kink lies "
                    "within the step, and PASS or FAIL. Without options every activation × "
                    f"loss pair is checked on layer sizes "
                    f"{'-'.join(str(n) for n in DEFAULT_GRADCHECK_LAYER_SIZES)}.",
        epilog="exit status: 0 when every array passes, 1 when any fails",
    )
    parser.add_argument("--layer-sizes", "--layer_sizes", type=_size_list, nargs="+", metavar="N",
                        help="input, hidden and output sizes, e.g. 4 5 3 or 4,5,3 (default: "
                             f"{' '.join(str(n) for n in DEFAULT_GRADCHECK_LAYER_SIZES)})")
    parser.add_argument("--activation", type=_name_type("activation", activations, allow_all=True),
                        nargs="+",
                        default=["all"], metavar="NAME",
                        help=f"hidden activations to check, or all (default: all = "
                             f"{', '.join(activations.names())})")
    parser.add_argument("--loss", type=_name_type("loss", losses, allow_all=True), nargs="+",
                        default=["all"],
                        metavar="NAME",
                        help=f"losses to check, or all (default: all = {', '.join(losses.names())})")
    parser.add_argument("--weight-decay", "--weight_decay", type=_non_negative_float, default=0.0,
                        metavar="LAMBDA", help="L2 strength λ (default: 0)")
    parser.add_argument("--batch", type=_positive_int, default=DEFAULT_GRADCHECK_BATCH, metavar="N",
                        help=f"examples in the random batch (default: {DEFAULT_GRADCHECK_BATCH})")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="seed of the weights, the batch and the entry sample (default: 0)")
    parser.add_argument("--tolerance", type=_positive_float, default=1e-6, metavar="TOL",
                        help="largest relative error that passes (default: 1e-6)")
    parser.add_argument("--step", type=_positive_float, default=1e-4, metavar="H",
                        help="step h of the central difference (default: 1e-4)")
    parser.set_defaults(handler=_gradcheck_command)


# --------------------------------------------------------------------------- saved models


def _load_model(path: str):
    from chainrule.training import load_model

    if not Path(path).exists():
        raise ValueError(f"model {path} not found; pass a run directory or its model.json")
    return load_model(path)


def _model_directory(path: str) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def _test_split(model, args: argparse.Namespace):
    """Return ``(raw test inputs, original labels, description)`` for a saved model."""
    from chainrule import datasets

    metadata = model.metadata or {}
    if args.data_dir is not None:
        folder = Path(args.data_dir)
        if not folder.is_dir():
            raise ValueError(f"data folder {folder} not found; --data-dir needs an IDX folder "
                             "with t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]")
        images, labels = datasets.load_folder(folder, "test")
        name = folder.name
    elif args.dataset is not None:
        name = datasets.canonical_name(args.dataset)
        images, labels = datasets.load(name, "test")
    elif metadata.get("data_dir"):
        images, labels = datasets.load_folder(metadata["data_dir"], "test")
        name = Path(metadata["data_dir"]).name
    elif metadata.get("dataset"):
        name = datasets.canonical_name(metadata["dataset"])
        images, labels = datasets.load(name, "test")
    else:
        raise ValueError(f"{args.model} does not record its data set; pass -d/--dataset or --data-dir")
    return images, labels, f"{name} test set"


def _class_names(model) -> list[str]:
    return model.class_names or [str(c) for c in range(model.network.n_classes)]


def _add_data_source(parser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("-d", "--dataset", metavar="{mnist,fashion_mnist}",
                        help="built-in data set whose test split to use (default: the one the "
                             "model was trained on)")
    source.add_argument("--data-dir", "--data_dir", metavar="DIR",
                        help="IDX folder whose t10k- (test) files to use")


def _explain_command(args: argparse.Namespace) -> int:
    from chainrule.diagnostic_plots import plot_explanation
    from chainrule.explanation import explain

    model = _load_model(args.model)
    images, labels, source = _test_split(model, args)
    if args.index >= images.shape[0]:
        raise ValueError(
            f"--index {args.index} is out of range: the {source} has {images.shape[0]} "
            f"examples, numbered 0 to {images.shape[0] - 1}"
        )
    explanation = explain(model, images[args.index], labels[args.index], index=args.index,
                          class_names=_class_names(model), source=source)
    print(explanation.format_text(top=args.top), end="")
    if not args.no_figure:
        default = _model_directory(args.model) / f"explain-{args.index}.png"
        output = Path(args.output) if args.output else default
        plot_explanation(explanation, output, dpi=args.dpi)
        print(f"wrote {output}")
    return 0


def _add_explain(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show backpropagation on one test example, layer by layer",
        description="Run one test example through a trained model and print the forward "
                    "values, then the backward walk in the course's order: ŷ, e(ℓ), the output "
                    "gradient ∇_{a_L} L = ŷ − e(ℓ), then for k = L down to 1 the gradients "
                    "with respect to W_k, b_k, h_{k-1} and a_{k-1}, each with its shape, norm "
                    "and largest entries. Writes explain-<index>.png into the run directory.",
    )
    parser.add_argument("model", metavar="MODEL_OR_RUN",
                        help="a run directory, or its model.json or model.npz")
    parser.add_argument("--index", type=_non_negative_int, default=0, metavar="N",
                        help="position of the example in the test split, from 0 (default: 0)")
    _add_data_source(parser)
    parser.add_argument("--top", type=_non_negative_int, default=5, metavar="K",
                        help="largest entries listed per gradient (default: 5)")
    parser.add_argument("--output", metavar="PNG",
                        help="where to write the figure (default: explain-<index>.png in the "
                             "run directory)")
    parser.add_argument("--no-figure", action="store_true", help="print the text only")
    _add_dpi(parser)
    parser.set_defaults(handler=_explain_command)


def _failures_command(args: argparse.Namespace) -> int:
    from chainrule.diagnostic_plots import plot_failures
    from chainrule.explanation import most_confident_failures

    model = _load_model(args.model)
    images, labels, source = _test_split(model, args)
    if args.limit_test is not None:
        images, labels = images[:args.limit_test], labels[:args.limit_test]
    failures = most_confident_failures(model, images, labels, count=args.count)
    names = _class_names(model)
    print(f"{len(failures)} most confidently wrong predictions on the {source} "
          f"({images.shape[0]} examples):")
    for failure in failures:
        print(f"  index {failure.index:>5}  true {names[failure.label]:<12}  predicted "
              f"{names[failure.predicted]:<12}  ŷ {failure.probability:.3f}  "
              f"(true class {failure.label_probability:.3f})")
    output = Path(args.output) if args.output else _model_directory(args.model) / "failures.png"
    plot_failures(failures, images, names, output, columns=args.columns, dpi=args.dpi,
                  title=f"The {len(failures)} most confidently wrong predictions on the {source}")
    print(f"wrote {output}")
    return 0


def _add_failures(subparsers) -> None:
    parser = subparsers.add_parser(
        "failures",
        help="draw the test images a model gets most confidently wrong",
        description="Find the misclassified test images with the highest predicted "
                    "probability and draw them with their true class, predicted class and "
                    "probability into failures.png in the run directory.",
    )
    parser.add_argument("model", metavar="MODEL_OR_RUN",
                        help="a run directory, or its model.json or model.npz")
    _add_data_source(parser)
    parser.add_argument("--count", type=_positive_int, default=24, metavar="N",
                        help="images to draw (default: 24)")
    parser.add_argument("--columns", type=_positive_int, default=8, metavar="N",
                        help="images per row (default: 8)")
    parser.add_argument("--limit-test", "--limit_test", type=_positive_int, metavar="N",
                        help="search only the first N test images (default: all)")
    parser.add_argument("--output", metavar="PNG",
                        help="where to write the figure (default: failures.png in the run directory)")
    _add_dpi(parser)
    parser.set_defaults(handler=_failures_command)


def _plot_diagnostics_command(args: argparse.Namespace) -> int:
    from chainrule.diagnostic_plots import plot_diagnostics

    run_dir = _model_directory(args.run)
    output = Path(args.output) if args.output else run_dir / "diagnostics.png"
    plot_diagnostics(args.run, output, dpi=args.dpi)
    print(f"wrote {output}")
    return 0


def _add_plot_diagnostics(subparsers) -> None:
    parser = subparsers.add_parser(
        "plot-diagnostics",
        help="draw the per-epoch diagnostics of a run trained with --diagnostics",
        description="Draw diagnostics.json of a run: the weight-gradient norm of each layer, "
                    "the fraction of dead ReLU units, the fraction of saturated sigmoid or tanh "
                    "units, and the spread between the units' gradients, per epoch.",
    )
    parser.add_argument("run", metavar="RUN_DIR",
                        help="a run directory with diagnostics.json, or the file itself")
    parser.add_argument("--output", metavar="PNG",
                        help="where to write the figure (default: diagnostics.png in the run directory)")
    _add_dpi(parser)
    parser.set_defaults(handler=_plot_diagnostics_command)


# --------------------------------------------------------------------------- comparisons


def _add_dpi(parser) -> None:
    from chainrule.diagnostic_plots import DEFAULT_DPI

    parser.add_argument("--dpi", type=_positive_int, default=DEFAULT_DPI,
                        help=f"resolution of the PNG in dots per inch (default: {DEFAULT_DPI})")


def _add_training_options(parser, *, command: str, epochs: int, hidden_sizes=(64,),
                          activation: bool = True, optimizer: bool = True) -> None:
    from chainrule import activations, initializers

    data = parser.add_argument_group("data")
    source = data.add_mutually_exclusive_group()
    source.add_argument("-d", "--dataset", default="fashion_mnist",
                        metavar="{mnist,fashion_mnist}",
                        help="built-in data set (default: fashion_mnist)")
    source.add_argument("--data-dir", "--data_dir", metavar="DIR",
                        help="IDX folder with train- and t10k- files, instead of a built-in set")
    data.add_argument("--train-size", "--train_size", type=_positive_int, default=DEFAULT_TRAIN_SIZE,
                      metavar="N", help="training examples drawn per class proportion "
                                        f"(default: {DEFAULT_TRAIN_SIZE})")
    data.add_argument("--test-size", "--test_size", type=_positive_int, default=DEFAULT_TEST_SIZE,
                      metavar="N", help=f"test examples drawn (default: {DEFAULT_TEST_SIZE})")

    training = parser.add_argument_group("training")
    training.add_argument("-e", "--epochs", type=_positive_int, default=epochs, metavar="N",
                          help=f"epochs per run (default: {epochs})")
    training.add_argument("-b", "--batch-size", "--batch_size", type=_positive_int, default=64,
                          metavar="N", help="examples per mini-batch (default: 64)")
    training.add_argument("--hidden-sizes", "--hidden_sizes", type=_positive_int, nargs="+",
                          default=list(hidden_sizes), metavar="UNITS",
                          help=f"units per hidden layer (default: {' '.join(map(str, hidden_sizes))})")
    if activation:
        training.add_argument("-a", "--activation", type=_name_type("activation", activations),
                              default="relu", metavar="NAME",
                              help=f"hidden activation: {', '.join(activations.names())} "
                                   "(default: relu)")
    training.add_argument("-w_i", "--weight-init", "--weight_init",
                          type=_name_type("weight initialisation", initializers), default="xavier",
                          metavar="NAME",
                          help=f"weight initialisation: {', '.join(initializers.names())} "
                               "(default: xavier)")
    if optimizer:
        training.add_argument("-o", "--optimizer", type=_optimizer_name, default="adam",
                              metavar="NAME", help="optimizer (default: adam)")
    training.add_argument("-lr", "--learning-rate", "--learning_rate", type=_positive_float,
                          metavar="RATE",
                          help="learning rate (default: the optimizer's own)")
    training.add_argument("--seed", type=_non_negative_int, default=0,
                          help="seed of the subset, the initial weights and the shuffling "
                               "(default: 0)")
    parser.add_argument("--output", default=f"{command}.png", metavar="PNG",
                        help=f"where to write the figure (default: {command}.png)")
    parser.add_argument("--quiet", action="store_true", help="print no epoch lines")
    _add_dpi(parser)


def _subset(args: argparse.Namespace):
    from chainrule.comparisons import load_subset

    source = args.data_dir if args.data_dir is not None else args.dataset
    return load_subset(source, train_size=args.train_size, test_size=args.test_size, seed=args.seed)


def _log(args: argparse.Namespace):
    if args.quiet:
        return None
    return lambda line: print(line, flush=True)


def _print_final(results: dict) -> None:
    width = max(len("run"), *(len(label) for label in results))
    print(f"{'run':<{width}}  train_accuracy  test_accuracy  train_loss  test_loss")
    for label, rows in results.items():
        last = rows[-1]
        print(f"{label:<{width}}  {last['train_accuracy']:>14.4f}  {last['test_accuracy']:>13.4f}  "
              f"{last['train_loss']:>10.4f}  {last['test_loss']:>9.4f}")


def _compare_losses_command(args: argparse.Namespace) -> int:
    from chainrule.diagnostic_plots import plot_curve_comparison
    from chainrule.comparisons import compare_losses

    data = _subset(args)
    results = compare_losses(
        data, hidden_sizes=args.hidden_sizes, activation=args.activation,
        weight_init=args.weight_init, optimizer=args.optimizer, learning_rate=args.learning_rate,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, log=_log(args),
    )
    _print_final(results)
    sizes = "-".join(str(n) for n in [data.n_features, *args.hidden_sizes, data.n_classes])
    plot_curve_comparison(
        results, args.output, dpi=args.dpi,
        title=f"Cross-entropy against squared error: {sizes} {args.activation}, {args.optimizer}, "
              f"{data.X_train.shape[0]} {data.name} training examples, seed {args.seed}",
    )
    print(f"wrote {args.output}")
    return 0


def _compare_optimizers_command(args: argparse.Namespace) -> int:
    from chainrule import optimizers
    from chainrule.diagnostic_plots import plot_curve_comparison
    from chainrule.comparisons import compare_optimizers

    names = args.optimizers or optimizers.names()
    rates = {name: args.learning_rate for name in names} if args.learning_rate else {}
    rates.update(dict(args.learning_rates or []))
    data = _subset(args)
    results = compare_optimizers(
        data, optimizers=names, learning_rates=rates, hidden_sizes=args.hidden_sizes,
        activation=args.activation, weight_init=args.weight_init, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, log=_log(args),
    )
    _print_final(results)
    described = ", ".join(
        f"{name} {rates[name]:g}" if name in rates
        else f"{name} {optimizers.get(name).learning_rate:g}"
        for name in names
    )
    plot_curve_comparison(
        results, args.output, dpi=args.dpi,
        title=f"Optimizers on {data.X_train.shape[0]} {data.name} training examples, seed "
              f"{args.seed}\nlearning rates: {described}",
    )
    print(f"wrote {args.output}")
    return 0


def _compare_activations_command(args: argparse.Namespace) -> int:
    from chainrule.diagnostic_plots import plot_activation_comparison
    from chainrule.comparisons import compare_activations

    data = _subset(args)
    records = compare_activations(
        data, activations=args.activations, hidden_sizes=args.hidden_sizes,
        weight_init=args.weight_init, optimizer=args.optimizer, learning_rate=args.learning_rate,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, log=_log(args),
    )
    for label, record in records.items():
        norms = ", ".join(f"W_{k + 1} {value:.2e}"
                          for k, value in enumerate(record["rows"][0]["weight_gradient_norm"]))
        print(f"{label}: weight-gradient norms before training: {norms}")
    plot_activation_comparison(records, args.output, dpi=args.dpi)
    print(f"wrote {args.output}")
    return 0


def _accuracy_curves_command(args: argparse.Namespace) -> int:
    from chainrule.diagnostic_plots import plot_accuracy_curves
    from chainrule.comparisons import accuracy_curves

    data = _subset(args)
    rows = accuracy_curves(
        data, hidden_sizes=args.hidden_sizes, activation=args.activation,
        weight_init=args.weight_init, optimizer=args.optimizer, learning_rate=args.learning_rate,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, log=_log(args),
    )
    sizes = "-".join(str(n) for n in [data.n_features, *args.hidden_sizes, data.n_classes])
    _print_final({sizes: rows})
    plot_accuracy_curves(
        rows, args.output, dpi=args.dpi,
        title=f"Training against test accuracy: {sizes} {args.activation}, {args.optimizer}, "
              f"{data.X_train.shape[0]} {data.name} training examples",
    )
    print(f"wrote {args.output}")
    return 0


def _optimizer_paths_command(args: argparse.Namespace) -> int:
    from chainrule.diagnostic_plots import plot_optimizer_paths
    from chainrule.surfaces import SURFACES, optimizer_paths

    surfaces = args.surfaces or list(SURFACES)
    rates = dict(args.learning_rates or [])
    paths = {
        surface: optimizer_paths(surface, args.optimizers, steps=args.steps, learning_rates=rates)
        for surface in surfaces
    }
    for surface, by_optimizer in paths.items():
        function = SURFACES[surface].function
        ends = ", ".join(
            f"{name} f = {float(function(*points[-1])):.3g}" for name, points in by_optimizer.items()
        )
        print(f"{surface}: after {len(next(iter(by_optimizer.values()))) - 1} steps: {ends}")
    plot_optimizer_paths(paths, args.output, dpi=args.dpi)
    print(f"wrote {args.output}")
    return 0


def _add_comparisons(subparsers) -> None:
    from chainrule import activations, optimizers

    parser = subparsers.add_parser(
        "compare-losses",
        help="train with cross-entropy and with squared error and overlay the curves",
        description="Train the same network from the same initial weights once with "
                    "cross-entropy and once with squared error on a subset, and draw their "
                    "training (solid) and test (dashed) loss and accuracy per epoch.",
    )
    _add_training_options(parser, command="compare-losses", epochs=DEFAULT_COMPARISON_EPOCHS)
    parser.set_defaults(handler=_compare_losses_command)

    parser = subparsers.add_parser(
        "compare-optimizers",
        help="train with each optimizer and overlay the curves",
        description="Train the same network from the same initial weights with each "
                    "optimizer on a subset, and draw their training (solid) and test "
                    "(dashed) loss and accuracy per epoch.",
    )
    _add_training_options(parser, command="compare-optimizers", epochs=DEFAULT_COMPARISON_EPOCHS,
                          optimizer=False)
    parser.add_argument("--optimizers", type=_optimizer_name, nargs="+", metavar="NAME",
                        help=f"optimizers to compare (default: {' '.join(optimizers.names())})")
    parser.add_argument("--learning-rates", "--learning_rates", type=_learning_rate_pair,
                        nargs="+", metavar="NAME=RATE",
                        help="per-optimizer learning rates, e.g. sgd=0.1 momentum=0.01 "
                             "(default: each optimizer's own, or -lr for all)")
    parser.set_defaults(handler=_compare_optimizers_command)

    parser = subparsers.add_parser(
        "compare-activations",
        help="compare per-layer gradient norms of deep sigmoid and ReLU stacks",
        description="Train one deep stack per activation from the same initialisation and "
                    "record the weight-gradient norm of every layer before training and after "
                    "each epoch: through sigmoid layers the gradient shrinks towards the input "
                    "(vanishing gradients), through ReLU layers it does not.",
    )
    _add_training_options(parser, command="compare-activations", epochs=DEFAULT_COMPARISON_EPOCHS,
                          hidden_sizes=(64, 64, 64, 64), activation=False)
    parser.add_argument("--activations", type=_name_type("activation", activations), nargs="+",
                        default=["sigmoid", "relu"], metavar="NAME",
                        help="activations to compare (default: sigmoid relu)")
    parser.set_defaults(handler=_compare_activations_command)

    parser = subparsers.add_parser(
        "accuracy-curves",
        help="draw training against test accuracy over the epochs",
        description="Train one network on a subset and draw its training and test accuracy "
                    "and loss after every epoch, both measured on the same weights.",
    )
    _add_training_options(parser, command="accuracy-curves", epochs=10)
    parser.set_defaults(handler=_accuracy_curves_command)

    parser = subparsers.add_parser(
        "optimizer-paths",
        help="draw optimizers' paths over 2-D error surfaces",
        description="Run each optimizer on a quadratic bowl, the Rosenbrock valley and a "
                    "saddle, and draw its path over the contours of each surface. Learning "
                    "rates default to values that keep every path visible on each surface.",
    )
    parser.add_argument("--surfaces", type=_surface_name, nargs="+", metavar="NAME",
                        help="surfaces to draw (default: bowl rosenbrock saddle)")
    parser.add_argument("--optimizers", type=_optimizer_name, nargs="+", metavar="NAME",
                        help=f"optimizers to run (default: {' '.join(optimizers.names())})")
    parser.add_argument("--steps", type=_non_negative_int, metavar="N",
                        help="steps per path (default: each surface's own, 60 to 500)")
    parser.add_argument("--learning-rates", "--learning_rates", type=_learning_rate_pair,
                        nargs="+", metavar="NAME=RATE",
                        help="learning rates for every surface, e.g. sgd=0.05 adam=0.1")
    parser.add_argument("--output", default="optimizer-paths.png", metavar="PNG",
                        help="where to write the figure (default: optimizer-paths.png)")
    _add_dpi(parser)
    parser.set_defaults(handler=_optimizer_paths_command)


# --------------------------------------------------------------------------- registration


def register(subparsers) -> None:
    """Add ``gradcheck``, ``explain``, ``failures``, ``plot-diagnostics`` and the comparison commands.

    ``subparsers`` is what ``ArgumentParser.add_subparsers()`` returns. Every command sets
    ``handler``, a function ``handler(args) -> int`` returning the exit status.
    """
    _add_gradcheck(subparsers)
    _add_explain(subparsers)
    _add_failures(subparsers)
    _add_plot_diagnostics(subparsers)
    _add_comparisons(subparsers)
