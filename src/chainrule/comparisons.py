"""Experiments for a course report: losses, optimizers and activations compared on a subset.

Each comparison builds every network from the same seed, so that only the compared setting
differs. :func:`train_with_curves` measures loss and accuracy on the whole training and test
subsets after every epoch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable

from chainrule import optimizers as optimizer_registry
from chainrule.backend import xp
from chainrule.diagnostics import DEFAULT_DIAGNOSTIC_ROWS, DiagnosticsRecorder
from chainrule.network import Network

__all__ = [
    "DataSubset",
    "load_subset",
    "train_with_curves",
    "compare_losses",
    "compare_optimizers",
    "compare_activations",
    "accuracy_curves",
]


@dataclass
class DataSubset:
    """A preprocessed training and test subset of a data set, with the raw test images."""

    X_train: Any
    y_train: Any
    X_test: Any
    y_test: Any
    raw_test: Any
    class_names: list
    name: str

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def _stratified_sample(labels, size: int, seed: int):
    """Return sorted indices of a class-stratified sample of ``size`` rows (all rows if fewer)."""
    from chainrule.datasets import stratified_split

    n = labels.shape[0]
    if size >= n:
        return xp.arange(n)
    _, sample = stratified_split(labels, validation_fraction=size / n, seed=seed)
    return xp.sort(sample)[:size]


def load_subset(
    dataset: str = "fashion_mnist",
    *,
    train_size: int = 5000,
    test_size: int = 1000,
    seed: int = 0,
) -> DataSubset:
    """Load a class-stratified subset of a data set, scaled to [0, 1].

    Parameters
    ----------
    dataset : str
        A built-in name (``mnist``, ``fashion_mnist``) or a path that
        :func:`chainrule.datasets.load_dataset` reads (IDX folder, ``.npz``, ``.csv``).
    train_size, test_size : int
        Rows kept from each split, drawn with ``seed`` in each class's proportion.
    seed : int
    """
    from chainrule import datasets
    from chainrule.preprocessing import Preprocessor
    from chainrule.validation import check_positive_int

    check_positive_int("train_size", train_size)
    check_positive_int("test_size", test_size)
    train = datasets.load_dataset(dataset, "train")
    test = datasets.load_dataset(dataset, "test", label_mapping=train.label_mapping)
    train_rows = _stratified_sample(train.labels, train_size, seed)
    test_rows = _stratified_sample(test.labels, test_size, seed)
    preprocessor = Preprocessor(scale=True)
    X_train = preprocessor.fit_transform(train.features[train_rows])
    return DataSubset(
        X_train=X_train,
        y_train=train.labels[train_rows],
        X_test=preprocessor.transform(test.features[test_rows]),
        y_test=test.labels[test_rows],
        raw_test=test.features[test_rows],
        class_names=list(train.class_names),
        name=str(train.source),
    )


class _EpochEvaluator:
    """Trainer callback: loss and accuracy on the whole training and test sets after each epoch.

    The trainer's own ``train_accuracy`` is a running mean over the epoch's mini-batches,
    taken while the weights change. A curve of training against test accuracy needs both
    measured on the same weights, so this evaluates again at the end of the epoch.
    """

    def __init__(self, network: Network, data: DataSubset):
        self.data = data
        self.rows: list[dict] = []
        self.record(0, network)

    def record(self, epoch: int, network: Network) -> None:
        from chainrule.training import loss_and_accuracy

        data = self.data
        train_loss, train_accuracy = loss_and_accuracy(
            network, network.check_input(data.X_train), data.y_train
        )
        test_loss, test_accuracy = loss_and_accuracy(
            network, network.check_input(data.X_test), data.y_test
        )
        self.rows.append({
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
        })

    def __call__(self, trainer, row: dict) -> None:
        self.record(int(row["epoch"]), trainer.network)


def train_with_curves(
    network: Network,
    data: DataSubset,
    *,
    optimizer="adam",
    learning_rate: float | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    callbacks=(),
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train ``network`` on ``data`` and return end-of-epoch curves.

    Returns
    -------
    list of dict
        One row per epoch, from epoch 0 (before training) to ``epochs``:
        ``epoch``, ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``,
        all measured on the whole subsets after the epoch. Losses are data losses
        without the L2 term.
    """
    from chainrule.training import Trainer

    if isinstance(optimizer, str):
        hyperparameters = {} if learning_rate is None else {"learning_rate": learning_rate}
        optimizer = optimizer_registry.get(optimizer, **hyperparameters)
    evaluator = _EpochEvaluator(network, data)
    trainer = Trainer(
        network,
        optimizer,
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        progress=False,
        quiet=log is None,
        log=log,
        callbacks=[evaluator, *callbacks],
    )
    trainer.fit(data.X_train, data.y_train)
    return evaluator.rows


def _hidden_sizes(hidden_sizes) -> list[int]:
    sizes = [hidden_sizes] if isinstance(hidden_sizes, numbers.Integral) else list(hidden_sizes)
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"hidden sizes must be positive integers, got {hidden_sizes!r}")
    return [int(size) for size in sizes]


def _labelled_log(log, label: str):
    if log is None:
        return None
    return lambda line: log(f"[{label}] {line}")


def compare_losses(
    data: DataSubset,
    *,
    hidden_sizes=(64,),
    activation: str = "relu",
    weight_init: str = "xavier",
    optimizer: str = "adam",
    learning_rate: float | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[dict]]:
    """Train the same network from the same initial weights under each loss.

    Returns ``{"cross_entropy": curves, "mean_squared_error": curves}`` with the rows of
    :func:`train_with_curves`.
    """
    from chainrule import losses

    sizes = [data.n_features, *_hidden_sizes(hidden_sizes), data.n_classes]
    results = {}
    for loss in losses.names():
        # The same seed gives the same initial weights: only the loss differs.
        network = Network(sizes, activation=activation, weight_init=weight_init, loss=loss, seed=seed)
        results[loss] = train_with_curves(
            network, data, optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
            batch_size=batch_size, seed=seed, log=_labelled_log(log, loss),
        )
    return results


def compare_optimizers(
    data: DataSubset,
    *,
    optimizers=None,
    learning_rates: dict | None = None,
    hidden_sizes=(64,),
    activation: str = "relu",
    weight_init: str = "xavier",
    loss: str = "cross_entropy",
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[dict]]:
    """Train the same network from the same initial weights with each optimizer.

    ``optimizers`` defaults to every name in :func:`chainrule.optimizers.names`;
    ``learning_rates`` maps a name to its learning rate, and the others keep their
    optimizer's default. Returns ``{name: curves}``.
    """
    names = optimizer_registry.names() if optimizers is None else list(optimizers)
    learning_rates = dict(learning_rates or {})
    sizes = [data.n_features, *_hidden_sizes(hidden_sizes), data.n_classes]
    results = {}
    for name in names:
        network = Network(sizes, activation=activation, weight_init=weight_init, loss=loss, seed=seed)
        results[name] = train_with_curves(
            network, data, optimizer=name, learning_rate=learning_rates.get(name),
            epochs=epochs, batch_size=batch_size, seed=seed, log=_labelled_log(log, name),
        )
    return results


def compare_activations(
    data: DataSubset,
    *,
    activations=("sigmoid", "relu"),
    hidden_sizes=(64, 64, 64, 64),
    weight_init: str = "xavier",
    optimizer: str = "adam",
    learning_rate: float | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int = 0,
    diagnostic_rows: int = DEFAULT_DIAGNOSTIC_ROWS,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict]:
    """Train one deep stack per activation with a diagnostics recorder on each.

    Returns ``{activation: record}`` where each record has the form of
    :func:`chainrule.diagnostics.load_diagnostics` (``activations``, ``layer_sizes``,
    ``rows``, ...), so the per-layer gradient norms of a sigmoid and a ReLU stack can be
    drawn side by side.
    """
    sizes = [data.n_features, *_hidden_sizes(hidden_sizes), data.n_classes]
    rows = _stratified_sample(data.y_train, diagnostic_rows, seed)
    results = {}
    for activation in activations:
        network = Network(sizes, activation=activation, weight_init=weight_init, seed=seed)
        recorder = DiagnosticsRecorder(network, data.X_train[rows], data.y_train[rows])
        train_with_curves(
            network, data, optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
            batch_size=batch_size, seed=seed, callbacks=[recorder],
            log=_labelled_log(log, activation),
        )
        results[network.activation_names[0]] = recorder.to_dict()
    return results


def accuracy_curves(
    data: DataSubset,
    *,
    hidden_sizes=(64,),
    activation: str = "relu",
    weight_init: str = "xavier",
    loss: str = "cross_entropy",
    optimizer: str = "adam",
    learning_rate: float | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train one network and return its training and test curves (see :func:`train_with_curves`)."""
    sizes = [data.n_features, *_hidden_sizes(hidden_sizes), data.n_classes]
    network = Network(sizes, activation=activation, weight_init=weight_init, loss=loss, seed=seed)
    return train_with_curves(
        network, data, optimizer=optimizer, learning_rate=learning_rate, epochs=epochs,
        batch_size=batch_size, seed=seed, log=log,
    )
