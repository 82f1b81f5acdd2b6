"""Training diagnostics: per-layer gradient norms and unit states, measured after every epoch.

:class:`DiagnosticsRecorder` is a trainer callback that, after every epoch, measures on a
fixed diagnostic batch:

* ``weight_gradient_norm``: ``‖∇W_k‖`` (Frobenius) of the data loss, per layer. Through a
  sigmoid stack it shrinks towards the input layer (vanishing gradients);
* ``dead_fraction``: per ReLU layer, the fraction of units whose pre-activation is ``<= 0``
  on every example of the batch, so that they pass no gradient at all;
* ``saturated_fraction``: per sigmoid or tanh layer, the fraction of unit–example pairs
  where ``g'(a)`` is below :data:`SATURATION_LEVEL` times the largest slope of ``g``;
* ``unit_gradient_spread``: per hidden layer, how much the gradients of its units differ
  (see :func:`unit_gradient_spread`). With zero or constant initialisation it stays at 0,
  which shows that the units never stop being copies of one another. The output layer is
  left out: its units stand for different classes, and under cross-entropy their gradient
  rows sum to zero, so their spread is 1 whatever the initialisation.

Figures are in :mod:`chainrule.diagnostic_plots`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from chainrule.backend import xp
from chainrule.network import Network

__all__ = [
    "DIAGNOSTICS_FILE",
    "DIAGNOSTICS_CSV_FILE",
    "SATURATION_LEVEL",
    "DiagnosticsRecorder",
    "recorder_for_run",
    "load_diagnostics",
    "measure",
    "unit_gradient_spread",
]

DIAGNOSTICS_FILE = "diagnostics.json"
DIAGNOSTICS_CSV_FILE = "diagnostics.csv"
DIAGNOSTICS_FORMAT_VERSION = 1
# A unit counts as saturated on an example when g'(a) is below this fraction of the largest
# slope of g: sigmoid h < 0.0127 or h > 0.9873 (|a| > 4.36), tanh |h| > 0.975 (|a| > 2.18).
SATURATION_LEVEL = 0.05
_MAXIMUM_SLOPE = {"sigmoid": 0.25, "tanh": 1.0}
# Rows of the diagnostic batch that recorder_for_run keeps: enough for stable fractions,
# few enough that one extra forward and backward pass per epoch costs nothing noticeable.
DEFAULT_DIAGNOSTIC_ROWS = 256


def unit_gradient_spread(unit_gradients) -> float:
    """Return how much the gradient rows of a layer's units differ, from 0 to 1.

    Row ``i`` of ``unit_gradients`` ``(units, inputs)`` is unit ``i``'s gradient trace:
    its row of ``∇W_k`` with ``∇b_k[i]`` appended. The spread is

        sqrt(mean_j var_i(R[i, j])) / sqrt(mean_ij R[i, j]²)

    the standard deviation across units, averaged over the entries, relative to the size
    of the entries. It is 0 exactly when every row is the same (and 0 for an all-zero
    matrix), and near 1 for rows of independent zero-mean values.
    """
    rows = xp.asarray(unit_gradients, dtype=xp.float64)
    if rows.ndim != 2:
        raise ValueError(f"unit_gradients must be 2-D (units, inputs), got shape {rows.shape}")
    scale = math.sqrt(float(xp.mean(rows * rows)))
    if scale == 0.0:
        return 0.0
    deviation = math.sqrt(float(xp.mean(xp.var(rows, axis=0))))
    return deviation / scale


def measure(network: Network, X, labels) -> dict:
    """Measure the diagnostics of ``network`` on a batch, as lists indexed by layer.

    ``X`` and ``labels`` must already be valid (see :meth:`Network.check_input`).

    Returns
    -------
    dict
        ``loss``: the mean data loss on the batch.
        ``weight_gradient_norm`` and ``bias_gradient_norm``: ``L`` floats, the norms of
        the data-loss gradient without the L2 term, so that weight decay does not mask
        a vanishing gradient.
        ``unit_gradient_spread``: ``L − 1`` floats, one per hidden layer.
        ``dead_fraction`` and ``saturated_fraction``: ``L − 1`` values, None where the
        layer's activation has no such state. Only ReLU units can be dead, and only
        sigmoid and tanh units saturated.
    """
    loss, gradients = network.loss_and_gradients(X, labels)
    pre_activations, activations = network.forward_trace(X)

    weight_norms, bias_norms, spreads = [], [], []
    for k in range(network.n_layers):
        weight_gradient = gradients.weights[k].astype(xp.float64)
        if network.weight_decay:
            weight_gradient -= network.weight_decay * network.weights[k]
        bias_gradient = gradients.biases[k].astype(xp.float64)
        weight_norms.append(float(xp.linalg.norm(weight_gradient)))
        bias_norms.append(float(xp.linalg.norm(bias_gradient)))
        if k < network.n_layers - 1:
            spreads.append(unit_gradient_spread(xp.hstack([weight_gradient, bias_gradient[:, None]])))

    dead, saturated = [], []
    for k, name in enumerate(network.activation_names):
        a = pre_activations[k]
        h = activations[k + 1]
        if name == "relu":
            # A unit is dead on this batch when no example switches it on.
            dead.append(float(xp.mean(xp.all(a <= 0, axis=0))))
        else:
            dead.append(None)
        if name in _MAXIMUM_SLOPE:
            slope = network.activation_functions[k].derivative(a, h)
            threshold = SATURATION_LEVEL * _MAXIMUM_SLOPE[name]
            saturated.append(float(xp.mean(slope < threshold)))
        else:
            saturated.append(None)

    data_loss = float(loss) - network.l2_penalty()
    return {
        "loss": data_loss,
        "weight_gradient_norm": weight_norms,
        "bias_gradient_norm": bias_norms,
        "dead_fraction": dead,
        "saturated_fraction": saturated,
        "unit_gradient_spread": spreads,
    }


_PER_LAYER_KEYS = (
    "weight_gradient_norm",
    "bias_gradient_norm",
    "unit_gradient_spread",
    "dead_fraction",
    "saturated_fraction",
)
_HISTORY_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


class DiagnosticsRecorder:
    """A trainer callback that records :func:`measure` after every epoch.

    Use it as ``Trainer(..., callbacks=[recorder])``; the trainer calls
    ``recorder(trainer, row)`` after each epoch. With ``run_dir`` set, the whole record is
    rewritten to ``diagnostics.json`` (and a flat ``diagnostics.csv``) after every epoch,
    through a temporary file and a rename.

    Parameters
    ----------
    network : Network
        The network being trained; measured once at construction as epoch 0 when
        ``record_initial`` is true.
    X : array ``(batch, n_0)``
        The fixed diagnostic batch, measured every epoch.
    labels : int array ``(batch,)``
    run_dir : path, optional
        Where to write the files.
    record_initial : bool
        Measure the network before training, as epoch 0.

    Attributes
    ----------
    rows : list of dict
        One dict per measurement: ``epoch``, the history's losses and accuracies when the
        trainer provided them, and the entries of :func:`measure`.
    """

    def __init__(self, network: Network, X, labels, *, run_dir=None, record_initial: bool = True):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a chainrule.Network, got {type(network).__name__}")
        self.network = network
        self.X = network.check_input(X)
        self.labels = network.check_labels(labels, self.X.shape[0])
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.rows: list[dict] = []
        if record_initial:
            self.record(0)

    def __call__(self, trainer, row: dict) -> None:
        self.record(int(row["epoch"]), history_row=row, network=getattr(trainer, "network", None))

    def record(self, epoch: int, *, history_row: dict | None = None, network: Network | None = None) -> dict:
        """Measure the network now, append the row, save if ``run_dir`` is set; return the row."""
        network = self.network if network is None else network
        row: dict = {"epoch": int(epoch)}
        for key in _HISTORY_KEYS:
            value = (history_row or {}).get(key)
            row[key] = float(value) if value is not None else math.nan
        row.update(measure(network, self.X, self.labels))
        self.rows.append(row)
        if self.run_dir is not None:
            self.save(self.run_dir)
        return row

    def metadata(self) -> dict:
        """Return the description saved with the rows: architecture and settings."""
        return {
            "format_version": DIAGNOSTICS_FORMAT_VERSION,
            "layer_sizes": list(self.network.layer_sizes),
            "activations": list(self.network.activation_names),
            "loss": self.network.loss_name,
            "weight_init": self.network.weight_init,
            "diagnostic_batch_size": int(self.X.shape[0]),
            "saturation_level": SATURATION_LEVEL,
        }

    def to_dict(self) -> dict:
        """Return the metadata and the rows as one JSON-ready dict (NaN becomes null)."""
        return _json_ready({**self.metadata(), "rows": self.rows})

    def save(self, run_dir) -> Path:
        """Write ``diagnostics.json`` and ``diagnostics.csv`` into ``run_dir``; return the JSON path."""
        from chainrule.training import atomic_write_text

        run_dir = Path(run_dir)
        path = run_dir / DIAGNOSTICS_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        atomic_write_text(run_dir / DIAGNOSTICS_CSV_FILE, _rows_to_csv(self.rows, self.network.n_layers))
        return path


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, xp.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rows_to_csv(rows: list[dict], n_layers: int) -> str:
    """Flatten the per-layer lists into columns such as ``weight_gradient_norm_1``."""
    columns = ["epoch", *_HISTORY_KEYS, "loss"]
    for key in _PER_LAYER_KEYS:
        count = n_layers if key in ("weight_gradient_norm", "bias_gradient_norm") else n_layers - 1
        columns.extend(f"{key}_{k}" for k in range(1, count + 1))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = [row["epoch"], *(row[key] for key in _HISTORY_KEYS), row["loss"]]
        for key in _PER_LAYER_KEYS:
            values.extend(row[key])
        writer.writerow(
            "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
            for value in values
        )
    return buffer.getvalue()


def recorder_for_run(
    run_dir,
    network: Network,
    X,
    labels,
    *,
    rows: int = DEFAULT_DIAGNOSTIC_ROWS,
    seed: int = 0,
) -> DiagnosticsRecorder:
    """Return a recorder that saves ``diagnostics.json`` and ``.csv`` in ``run_dir`` every epoch.

    The diagnostic batch is ``rows`` rows of ``(X, labels)`` drawn without replacement
    with ``seed`` (all of them when there are fewer), and stays fixed for the whole run,
    so that the epochs compare. The network is measured once before training (epoch 0).

    Parameters
    ----------
    run_dir : path
        The run directory; created if missing.
    network : Network
    X : array ``(n, n_0)``
        Preprocessed training features.
    labels : int array ``(n,)``
        Class indices.
    rows : int
        Size of the diagnostic batch.
    seed : int
        Seed of the row sample.
    """
    from chainrule.validation import check_positive_int

    rows = check_positive_int("rows", rows)
    X = xp.asarray(X)
    labels = xp.asarray(labels)
    if X.ndim == 0 or labels.ndim != 1 or X.shape[0] != labels.shape[0]:
        raise ValueError(
            f"X and labels must have the same number of rows, got X of shape {X.shape} and "
            f"labels of shape {labels.shape}"
        )
    if X.shape[0] > rows:
        chosen = xp.sort(xp.random.default_rng(seed).choice(X.shape[0], rows, replace=False))
        X, labels = X[chosen], labels[chosen]
    return DiagnosticsRecorder(network, X, labels, run_dir=run_dir)


def load_diagnostics(path) -> dict:
    """Read ``diagnostics.json`` from a run directory or a file path.

    Returns the saved dict: ``layer_sizes``, ``activations``, ``loss``, ... and ``rows``,
    with null values turned back into None.
    """
    path = Path(path)
    if path.is_dir():
        path = path / DIAGNOSTICS_FILE
    if not path.is_file():
        raise ValueError(
            f"diagnostics file {path} not found; train with diagnostics on (chainrule train "
            "--diagnostics) or pass the run directory that contains it"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a valid diagnostics file: {error}") from None
    valid = (
        isinstance(data, dict)
        and data.get("format_version") == DIAGNOSTICS_FORMAT_VERSION
        and "rows" in data
    )
    if not valid:
        raise ValueError(
            f"{path} is not a chainrule diagnostics file of format {DIAGNOSTICS_FORMAT_VERSION}"
        )
    return data
