"""Training loops, checkpoints and saved models.

:class:`Trainer` runs epochs of shuffled mini-batches over a :class:`~chainrule.network.Network`
with an optimizer from :mod:`chainrule.optimizers` and a learning-rate schedule from
:mod:`chainrule.schedules`. The command line, the scikit-learn estimator and the sweeps all
train through it.

Each epoch appends one row to ``history`` with the columns in :data:`HISTORY_COLUMNS`.
``train_loss`` and ``train_accuracy`` are running means over the epoch's mini-batches, taken
from the same forward passes that compute the gradients, so training costs no extra pass
over the data. All losses in the history are data losses, without the L2 penalty, so the
training and validation columns compare directly.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from chainrule import optimizers as optimizer_registry
from chainrule import schedules as schedule_registry
from chainrule.backend import xp
from chainrule.network import Network
from chainrule.validation import check_positive_int

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
)
CHECKPOINT_FORMAT_VERSION = 1
MODEL_FORMAT_VERSION = 1
# Rows per forward pass when evaluating a whole data set, to bound memory.
EVALUATION_CHUNK = 4096
# A cross-entropy batch loss above this multiple of log K (the loss of a uniform guess over
# K classes) means the logits differ by hundreds: the run has exploded, even while the
# numbers are still finite. Adam with a learning rate of 1e3 gets there in one step.
EXPLODED_LOSS_FACTOR = 100.0
# Batches are split across threads (see Trainer's ``threads``) only when batch size ×
# parameter count reaches PARALLEL_MIN_WORK and every thread gets MIN_ROWS_PER_BLOCK rows.
# `python benchmarks/bench_parts.py` times both regimes. On 2 cores the split took 0.83 to
# 0.89 of the time on 784-1024-1024-10 at batch 256 and 1024, 0.97 to 1.03 on
# 784-128-128-128-10 at batch 1024, and 1.11 to 1.12 on 784-512-256-10 at batch 128.
PARALLEL_MIN_WORK = 48_000_000
MIN_ROWS_PER_BLOCK = 128


class TrainingDiverged(RuntimeError):
    """Raised when the loss or the weights stop being finite.

    The network is put back to the parameters of the last complete epoch (or its
    initial parameters), and the checkpoint on disk, if any, is that epoch's.
    """

    def __init__(self, message: str, *, epoch: int, batch: int, learning_rate: float,
                 checkpoint_path: str | None):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.learning_rate = learning_rate
        self.checkpoint_path = checkpoint_path


class TrainingInterrupted(Exception):
    """Raised after the current mini-batch when training receives SIGINT (Ctrl-C)."""

    def __init__(self, message: str, *, epoch: int, batch: int, checkpoint_path: str | None):
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.checkpoint_path = checkpoint_path


def atomic_write_bytes(path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    A reader never sees a half-written file, and an error leaves any old ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates the file readable by its owner only. Give it the permissions that an
    # ordinary open() would, so that run files follow the user's umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    atomic_write_bytes(path, lambda file: file.write(text.encode("utf-8")))


def _json_ready(value):
    """Convert NumPy scalars and NaN for JSON (NaN becomes null)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, xp.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, xp.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _nan_from_json(value):
    return float("nan") if value is None else value


def format_epoch_line(row: dict, total_epochs: int) -> str:
    """Return the one-line epoch summary, e.g. ``epoch 3/20  train_loss 0.4123  ...``."""
    return (
        f"epoch {row['epoch']}/{total_epochs}  train_loss {row['train_loss']:.4f}  "
        f"val_loss {row['val_loss']:.4f}  val_accuracy {row['val_accuracy']:.4f}  "
        f"seconds {row['seconds']:.1f}"
    )


def loss_and_accuracy(network: Network, X, labels) -> tuple[float, float]:
    """Return the mean data loss (no L2 term) and accuracy on validated ``X`` and ``labels``."""
    total_loss = 0.0
    correct = 0
    for start in range(0, X.shape[0], EVALUATION_CHUNK):
        stop = min(start + EVALUATION_CHUNK, X.shape[0])
        logits = network.forward_trace(X[start:stop])[0][-1]
        loss = network.loss_function.value(logits, labels[start:stop])
        total_loss += loss * (stop - start)
        correct += int(xp.count_nonzero(xp.argmax(logits, axis=1) == labels[start:stop]))
    return total_loss / X.shape[0], correct / X.shape[0]


class _InterruptFlag:
    """Turns SIGINT into a flag that the batch loop checks, in the main thread only."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def _handle(self, signum, frame):
        self.raised = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class Trainer:
    """Mini-batch training with schedules, early stopping, checkpoints and divergence checks.

    Parameters
    ----------
    network : Network
        Trained in place.
    optimizer : str or Optimizer
        A name from :func:`chainrule.optimizers.names` (default hyperparameters) or an
        optimizer object.
    batch_size : int
        Rows per mini-batch; a batch larger than the data set is one batch.
    epochs : int
        Total number of epochs. A trainer restored from a checkpoint continues up to it.
    schedule : str or Schedule
        Learning-rate schedule by epoch: ``constant``, ``step``, ``exponential`` or
        ``cosine``, built from the optimizer's learning rate and ``epochs``.
    schedule_parameters : dict, optional
        Extra parameters for a named schedule (``step_size``, ``gamma``,
        ``min_learning_rate``).
    patience : int, optional
        Stop when the validation loss has not improved for this many epochs. The best
        weights are then restored at the end (see ``restore_best_weights``).
    restore_best_weights : bool, optional
        Put back the weights of the epoch with the lowest validation loss at the end.
        Defaults to true when ``patience`` is set.
    max_gradient_norm : float, optional
        Clip the global L2 norm of the gradient (L2 term included) to this value.
    shuffle : bool
        Draw a new permutation of the rows every epoch.
    seed : int or numpy.random.Generator
        Source of the shuffling; its state is saved in checkpoints.
    checkpoint_path : path, optional
        Where to write ``checkpoint.npz`` after every epoch (temporary name, then rename).
    progress : bool, optional
        Show a tqdm bar over batches; ``None`` shows it only when stderr is a terminal.
    quiet : bool
        Silence the bar and the epoch lines.
    threads : int, optional
        Threads for training; ``None`` takes the BLAS's thread count in effect when
        :meth:`fit` starts. When a batch holds enough work (batch size × parameters at
        least ``PARALLEL_MIN_WORK``, and ``MIN_ROWS_PER_BLOCK`` rows per thread), each
        thread backpropagates one block of the batch's rows with single-threaded BLAS,
        and the optimizer's update is split the same way. Otherwise the BLAS runs its
        matrix products on that many threads (set through threadpoolctl) and the
        update runs on one. The split changes sums only in the last bits, and a given
        thread count always gives the same result.
    callbacks : sequence of callables
        Each called as ``callback(trainer, row)`` after every epoch. A callback may set
        ``trainer.stopped_early = True`` to end training after that epoch.
    log : callable, optional
        Receives each epoch line; defaults to printing on stdout.
    """

    def __init__(
        self,
        network: Network,
        optimizer="adam",
        *,
        batch_size: int = 64,
        epochs: int = 10,
        schedule="constant",
        schedule_parameters: dict | None = None,
        patience: int | None = None,
        restore_best_weights: bool | None = None,
        max_gradient_norm: float | None = None,
        shuffle: bool = True,
        seed=0,
        checkpoint_path=None,
        progress: bool | None = None,
        quiet: bool = False,
        threads: int | None = None,
        callbacks=(),
        log=None,
    ):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a chainrule.Network, got {type(network).__name__}")
        self.network = network
        self.optimizer = (
            optimizer_registry.get(optimizer) if isinstance(optimizer, str) else optimizer
        )
        if not isinstance(self.optimizer, optimizer_registry.Optimizer):
            raise TypeError(
                "optimizer must be a name such as 'adam' or a chainrule optimizer, got "
                f"{type(optimizer).__name__}"
            )
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.epochs = check_positive_int("epochs", epochs)
        self.initial_learning_rate = self.optimizer.learning_rate
        if isinstance(schedule, schedule_registry.Schedule):
            self.schedule = schedule
        else:
            self.schedule = schedule_registry.get(
                schedule or "constant", self.initial_learning_rate, self.epochs,
                **(schedule_parameters or {}),
            )
        self.patience = None if patience is None else check_positive_int("patience", patience)
        self.restore_best_weights = (
            self.patience is not None if restore_best_weights is None else bool(restore_best_weights)
        )
        if max_gradient_norm is not None and not max_gradient_norm > 0:
            raise ValueError(f"max_gradient_norm must be > 0, got {max_gradient_norm!r}")
        self.max_gradient_norm = max_gradient_norm
        self.shuffle = bool(shuffle)
        self.rng = seed if isinstance(seed, xp.random.Generator) else xp.random.default_rng(
            check_seed(seed)
        )
        self.checkpoint_path = None if checkpoint_path is None else str(checkpoint_path)
        self.progress = progress
        self.quiet = bool(quiet)
        self.threads = None if threads is None else check_positive_int("threads", threads)
        self.callbacks = list(callbacks)
        self.log = log if log is not None else (lambda line: print(line, flush=True))

        self.history: list[dict] = []
        self.best_val_loss = math.inf
        self.best_epoch: int | None = None
        self.best_parameters = None
        self.epochs_without_improvement = 0
        self.stopped_early = False
        # Set when an interrupt stops an epoch part-way: its row order and running sums.
        self._partial_epoch: dict | None = None
        # Threads for optimizer.step and blocks of rows per batch; fit and train_epoch
        # set them from `threads`.
        self._update_threads = 1
        self._batch_blocks = 1
        self._gradient = xp.empty_like(network.parameters)
        self._last_good_parameters = network.parameters.copy()
        # Squared error on softmax outputs is at most 1, so only cross-entropy can explode
        # while staying finite.
        self.exploded_loss = (
            EXPLODED_LOSS_FACTOR * math.log(network.n_classes)
            if network.loss_name == "cross_entropy" else math.inf
        )

    # ------------------------------------------------------------------ public API

    def fit(self, X, y, validation_data=None) -> list[dict]:
        """Train until ``epochs`` epochs are done or early stopping ends the run.

        Parameters
        ----------
        X : array ``(n, features)``
            Preprocessed inputs, validated once here (not per batch).
        y : int array ``(n,)``
            Class indices ``0..K-1``.
        validation_data : tuple ``(X_val, y_val)``, optional
            Evaluated after every epoch; needed for early stopping.

        Returns
        -------
        list of dict
            The history, one row per epoch; also stored as ``network.history``.
        """
        _warn_if_unscaled(X)
        X = self.network.check_input(X)
        y = self.network.check_labels(y, X.shape[0])
        if validation_data is not None:
            X_val, y_val = validation_data
            X_val = self.network.check_input(X_val)
            y_val = self.network.check_labels(y_val, X_val.shape[0])
            validation_data = (X_val, y_val)

        limits = contextlib.nullcontext()
        if self.threads is not None:
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(limits=self.threads)
        # Overflow in a diverging run is detected by the finiteness checks, which stop
        # training with a message, so NumPy's warnings would only repeat it.
        quiet_overflow = xp.errstate(over="ignore", invalid="ignore", divide="ignore")
        with limits, quiet_overflow, _InterruptFlag() as interrupt:
            self._choose_threads()
            while len(self.history) < self.epochs and not self.stopped_early:
                self._run_epoch(X, y, validation_data, interrupt)

        if self.restore_best_weights and self.best_parameters is not None:
            self.network.parameters[...] = self.best_parameters
        self.network.history = self.history
        return self.history

    def train_epoch(self, X, y) -> dict:
        """Run one epoch on validated data without validation; return its history row."""
        quiet_overflow = xp.errstate(over="ignore", invalid="ignore", divide="ignore")
        with quiet_overflow, _InterruptFlag() as interrupt:
            self._choose_threads()
            self._run_epoch(X, y, None, interrupt)
        self.network.history = self.history
        return self.history[-1]

    # ------------------------------------------------------------------ one epoch

    def _run_epoch(self, X, y, validation_data, interrupt) -> None:
        epoch = len(self.history) + 1
        started = time.perf_counter()
        network, optimizer = self.network, self.optimizer
        parameters = network.parameters
        learning_rate = self.schedule(epoch - 1)
        optimizer.learning_rate = learning_rate

        n = X.shape[0]
        partial = self._partial_epoch
        self._partial_epoch = None
        if partial is not None and partial["epoch"] == epoch and partial["order"].shape == (n,):
            # Continue an epoch that an interrupt stopped: same row order, same sums.
            order = partial["order"]
            first_batch = partial["next_batch"]
            loss_sum, correct = partial["loss_sum"], partial["correct"]
            started -= partial["seconds"]
        else:
            order = self.rng.permutation(n) if self.shuffle else xp.arange(n)
            first_batch = 0
            loss_sum, correct = 0.0, 0
        batch_size = min(self.batch_size, n)
        n_batches = math.ceil(n / batch_size)
        batch_X = xp.empty((batch_size, X.shape[1]), dtype=X.dtype)
        batch_y = xp.empty(batch_size, dtype=y.dtype)

        batches = range(first_batch, n_batches)
        bar = None
        if self._show_progress():
            from tqdm.auto import tqdm

            bar = tqdm(batches, desc=f"epoch {epoch}/{self.epochs}", unit="batch",
                       leave=False, file=sys.stderr, initial=first_batch, total=n_batches)
            batches = bar

        try:
            with self._single_threaded_blas():
                for batch in batches:
                    rows = order[batch * batch_size:(batch + 1) * batch_size]
                    loss, hits = self._train_on_batch(X, y, rows, batch_X, batch_y,
                                                      epoch, batch, learning_rate)
                    loss_sum += loss * rows.shape[0]
                    correct += hits
                    if interrupt.raised:
                        self._partial_epoch = {
                            "epoch": epoch,
                            "order": order,
                            "next_batch": batch + 1,
                            "loss_sum": loss_sum,
                            "correct": correct,
                            "seconds": time.perf_counter() - started,
                        }
                        self._interrupted(epoch, batch + 1)
        finally:
            if bar is not None:
                bar.close()

        if not xp.isfinite(parameters.sum(dtype=xp.float64)):
            self._diverged(epoch, n_batches, learning_rate, "the weights became infinite or NaN")

        row = {
            "epoch": epoch,
            "train_loss": loss_sum / n,
            "train_accuracy": correct / n,
            "val_loss": float("nan"),
            "val_accuracy": float("nan"),
            "learning_rate": learning_rate,
            "seconds": 0.0,
        }
        if validation_data is not None:
            row["val_loss"], row["val_accuracy"] = loss_and_accuracy(network, *validation_data)
            if not math.isfinite(row["val_loss"]):
                self._diverged(epoch, n_batches, learning_rate, "the validation loss became NaN")
            self._track_best(row)
        row["seconds"] = time.perf_counter() - started
        self.history.append(row)
        self._last_good_parameters[...] = parameters

        if not self.quiet:
            self.log(format_epoch_line(row, self.epochs))
        if self.checkpoint_path is not None:
            self.save_checkpoint(self.checkpoint_path)
        for callback in self.callbacks:
            callback(self, row)

    def _train_on_batch(self, X, y, rows, batch_X, batch_y, epoch: int, batch: int,
                        learning_rate: float) -> tuple[float, int]:
        """Take one optimizer step on ``X[rows]``; return the batch's mean loss and hits."""
        m = rows.shape[0]
        # Gather the batch into a preallocated, contiguous buffer. The rows come from a
        # permutation, so they are in range; mode="clip" skips the bounds check, with
        # which NumPy would gather into a temporary array and copy it over.
        xp.take(X, rows, axis=0, out=batch_X[:m], mode="clip")
        xp.take(y, rows, out=batch_y[:m], mode="clip")

        loss, hits = self._gradient_at_lookahead(batch_X[:m], batch_y[:m])
        if not math.isfinite(loss):
            self._diverged(epoch, batch + 1, learning_rate, f"the loss became {loss}")
        if loss > self.exploded_loss:
            self._diverged(
                epoch, batch + 1, learning_rate,
                f"the loss exploded to {loss:.3g}, more than {EXPLODED_LOSS_FACTOR:g} "
                f"times the {math.log(self.network.n_classes):.3g} of a uniform guess",
            )
        if self.max_gradient_norm is not None:
            optimizer_registry.clip_gradient_norm(self._gradient, self.max_gradient_norm)
        self.optimizer.step(self.network.parameters, self._gradient,
                            threads=self._update_threads)
        return loss, hits

    def _choose_threads(self) -> None:
        """Set the optimizer's threads and the blocks of rows per batch (see ``threads``)."""
        threads = self.threads
        if threads is None:
            from threadpoolctl import threadpool_info

            counts = [entry["num_threads"] for entry in threadpool_info()
                      if entry.get("user_api") == "blas"]
            threads = max(1, min(counts, default=1))
        blocks = min(threads, self.batch_size // MIN_ROWS_PER_BLOCK)
        if self.batch_size * self.network.n_parameters < PARALLEL_MIN_WORK:
            blocks = 1
        self._batch_blocks = max(blocks, 1)
        # Right after a multi-threaded product, OpenBLAS's idle threads keep spinning on
        # the other cores, so the update gains from threads only beside one BLAS thread.
        self._update_threads = self._batch_blocks

    def _single_threaded_blas(self):
        """Return a context with one BLAS thread while batches are split across threads."""
        if self._batch_blocks < 2:
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=1, user_api="blas")

    def _gradient_at_lookahead(self, X, y) -> tuple[float, int]:
        """Fill the gradient buffer at the optimizer's look-ahead point; return loss and hits."""
        parameters = self.network.parameters
        point = self.optimizer.lookahead_point(parameters)
        # `threads` only when splitting, so a subclass with the older signature still works.
        split = {"threads": self._batch_blocks} if self._batch_blocks > 1 else {}
        if point is None:
            return self.network.loss_and_gradients_into(X, y, self._gradient, **split)
        # Nesterov: evaluate the gradient at the look-ahead point, then put the stored
        # parameters back, so the network always contains w and never the look-ahead point.
        saved = parameters.copy()
        parameters[...] = point
        try:
            return self.network.loss_and_gradients_into(X, y, self._gradient, **split)
        finally:
            parameters[...] = saved

    def _track_best(self, row: dict) -> None:
        if row["val_loss"] < self.best_val_loss:
            self.best_val_loss = row["val_loss"]
            self.best_epoch = row["epoch"]
            self.best_parameters = self.network.parameters.copy()
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
            if self.patience is not None and self.epochs_without_improvement >= self.patience:
                self.stopped_early = True

    def _show_progress(self) -> bool:
        if self.quiet:
            return False
        if self.progress is None:
            return sys.stderr.isatty()
        return bool(self.progress)

    def _diverged(self, epoch: int, batch: int, learning_rate: float, cause: str):
        self.network.parameters[...] = self._last_good_parameters
        last_epoch = len(self.history)
        if self.checkpoint_path is not None and last_epoch > 0:
            checkpoint_note = f"The checkpoint of epoch {last_epoch} is kept in {self.checkpoint_path}."
        elif self.checkpoint_path is not None:
            checkpoint_note = "No epoch finished, so there is no checkpoint to keep."
        else:
            checkpoint_note = f"The network was reset to its weights after epoch {last_epoch}."
        message = (
            f"training diverged at epoch {epoch}, batch {batch} (learning rate "
            f"{learning_rate:g}): {cause}. The learning rate is probably too high, or the "
            "input is not scaled (pixels should be in [0, 1]); try a learning rate 10 times "
            f"smaller or scale the input. {checkpoint_note}"
        )
        raise TrainingDiverged(message, epoch=epoch, batch=batch, learning_rate=learning_rate,
                               checkpoint_path=self.checkpoint_path)

    def _interrupted(self, epoch: int, batch: int):
        # The checkpoint records the batch position, so a resumed run finishes this epoch
        # exactly as an uninterrupted run would.
        if self.checkpoint_path is not None:
            self.save_checkpoint(self.checkpoint_path)
            where = (
                f"saved a checkpoint after that batch in {self.checkpoint_path}; training "
                "resumes from there"
            )
        else:
            where = "no checkpoint path was set, so nothing was saved"
        message = f"interrupted at epoch {epoch}, batch {batch}; {where}"
        raise TrainingInterrupted(message, epoch=epoch, batch=batch,
                                  checkpoint_path=self.checkpoint_path)

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, path) -> None:
        """Write everything needed to continue training to ``path`` (an ``.npz`` file).

        Contains the parameters, the optimizer state, the best parameters so far, the
        shuffling generator's state, the history and the epoch count. Written to a
        temporary name and renamed, so the previous checkpoint survives a crash.
        """
        arrays = {"parameters": self.network.parameters}
        if self.best_parameters is not None:
            arrays["best_parameters"] = self.best_parameters
        optimizer_state = self.optimizer.state_dict()
        scalars = {}
        for key, value in optimizer_state.items():
            if isinstance(value, xp.ndarray):
                arrays[f"optimizer.{key}"] = value
            else:
                scalars[key] = value
        meta = {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "epoch": len(self.history),
            "history": self.history,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
            "stopped_early": self.stopped_early,
            "rng_state": self.rng.bit_generator.state,
            "optimizer": self.optimizer.config(),
            "optimizer_scalars": scalars,
            "schedule": self.schedule.config(),
            "network": self.network.config(),
        }
        if self._partial_epoch is not None:
            partial = dict(self._partial_epoch)
            arrays["partial_epoch_order"] = partial.pop("order")
            meta["partial_epoch"] = partial
        arrays["meta"] = xp.array(json.dumps(_json_ready(meta)))
        atomic_write_bytes(path, lambda file: xp.savez(file, **arrays))

    def load_checkpoint(self, path) -> None:
        """Restore the state that :meth:`save_checkpoint` wrote, to continue training.

        Raises ``ValueError`` if the file is not a chainrule checkpoint or belongs to a
        network of another architecture.
        """
        path = str(path)
        try:
            with xp.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{path} is not a readable chainrule checkpoint ({error}); delete it to start over"
            ) from None
        if meta.get("format_version") != CHECKPOINT_FORMAT_VERSION:
            raise ValueError(
                f"{path} has checkpoint format {meta.get('format_version')!r}; this chainrule "
                f"reads format {CHECKPOINT_FORMAT_VERSION}"
            )
        if meta["network"]["layer_sizes"] != list(self.network.layer_sizes):
            raise ValueError(
                f"{path} contains a network with layer sizes {meta['network']['layer_sizes']}, "
                f"but this one has {list(self.network.layer_sizes)}"
            )
        self.network.set_parameters(arrays.pop("parameters"))
        self.best_parameters = arrays.pop("best_parameters", None)
        optimizer_state = dict(meta["optimizer_scalars"])
        for key in [k for k in arrays if k.startswith("optimizer.")]:
            optimizer_state[key.removeprefix("optimizer.")] = arrays.pop(key)
        self.optimizer.load_state_dict(optimizer_state)
        self.history = [
            {column: _nan_from_json(row[column]) for column in HISTORY_COLUMNS}
            for row in meta["history"]
        ]
        self.best_val_loss = _nan_from_json(meta["best_val_loss"])
        if self.best_val_loss is None or not math.isfinite(self.best_val_loss):
            self.best_val_loss = math.inf
        self.best_epoch = meta["best_epoch"]
        self.epochs_without_improvement = meta["epochs_without_improvement"]
        self.stopped_early = meta["stopped_early"]
        self.rng.bit_generator.state = meta["rng_state"]
        self._partial_epoch = None
        if meta.get("partial_epoch") is not None and "partial_epoch_order" in arrays:
            self._partial_epoch = dict(meta["partial_epoch"])
            self._partial_epoch["order"] = arrays.pop("partial_epoch_order")
        self._last_good_parameters[...] = self.network.parameters
        self.network.history = self.history


def _warn_if_unscaled(X) -> None:
    """Warn when training inputs are integers, which usually means raw 0-255 pixels."""
    dtype = getattr(X, "dtype", None)
    if dtype is not None and xp.issubdtype(dtype, xp.integer):
        warnings.warn(
            f"training input has integer dtype {dtype}, so it is probably unscaled pixel "
            "values; scale it to [0, 1] first, for example with "
            "chainrule.preprocessing.Preprocessor().fit_transform(images), or training "
            "may diverge",
            UserWarning,
            stacklevel=3,
        )


def check_seed(seed) -> int:
    """Return ``seed`` as an int, or raise ``ValueError`` unless it is an integer >= 0."""
    import numbers

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(
            f"seed must be a non-negative integer or a numpy.random.Generator, got {seed!r}"
        )
    return int(seed)


# ---------------------------------------------------------------------- saved models


@dataclass
class Model:
    """A trained network with the preprocessing and label mapping it was trained with."""

    network: Network
    preprocessor: object = None
    label_mapping: object = None
    class_names: list | None = None
    metadata: dict = field(default_factory=dict)

    def transform(self, raw_X):
        """Apply the saved preprocessing to raw inputs; return network features."""
        if self.preprocessor is None:
            return self.network.check_input(raw_X)
        return self.network.check_input(self.preprocessor.transform(raw_X))

    def predict_proba(self, raw_X):
        """Return class probabilities ``(n, classes)`` for raw inputs."""
        return self.network.predict_proba(self.transform(raw_X))

    def predict(self, raw_X):
        """Return predicted labels for raw inputs, in the original label values."""
        indices = self.network.predict(self.transform(raw_X))
        if self.label_mapping is None:
            return indices
        return self.label_mapping.decode(indices)

    def encode_labels(self, labels):
        """Map original labels to class indices ``0..K-1``."""
        if self.label_mapping is None:
            return self.network.check_labels(labels)
        return self.label_mapping.encode(labels)


def save_model(directory, network: Network, *, preprocessor=None, label_mapping=None,
               class_names=None, metadata=None) -> None:
    """Write ``model.npz`` (arrays ``W1, b1, ...``) and ``model.json`` into ``directory``.

    ``model.json`` contains the network settings, the preprocessing, the label mapping, the
    class names and free-form metadata; ``model.npz`` loads with ``allow_pickle=False``.
    """
    directory = Path(directory)
    arrays = {}
    for name, weights, biases in zip(
        range(1, network.n_layers + 1), network.weights, network.biases
    ):
        arrays[f"W{name}"] = weights
        arrays[f"b{name}"] = biases
    description = {
        "format_version": MODEL_FORMAT_VERSION,
        "network": network.config(),
        "preprocessing": None if preprocessor is None else preprocessor.to_dict(),
        "label_mapping": None if label_mapping is None else label_mapping.to_dict(),
        "class_names": None if class_names is None else list(class_names),
        "metadata": _json_ready(metadata or {}),
    }
    atomic_write_bytes(directory / "model.npz", lambda file: xp.savez(file, **arrays))
    atomic_write_text(directory / "model.json", json.dumps(description, indent=2) + "\n")


def _model_paths(path) -> tuple[Path, Path]:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"model path {path} not found; pass a run directory or its model.json")
    if path.is_dir():
        return path / "model.json", path / "model.npz"
    if path.suffix == ".json":
        return path, path.with_suffix(".npz")
    if path.suffix == ".npz":
        return path.with_suffix(".json"), path
    raise ValueError(
        f"{path} is not a run directory, model.json or model.npz; pass the directory that "
        "`chainrule train` wrote"
    )


def load_model(path) -> Model:
    """Load a model saved by :func:`save_model` from a run directory, ``model.json`` or ``.npz``.

    Raises ``ValueError`` naming the file and the problem for a missing, damaged or
    foreign file.
    """
    from chainrule.preprocessing import LabelMapping, Preprocessor

    json_path, npz_path = _model_paths(path)
    for required in (json_path, npz_path):
        if not required.is_file():
            raise ValueError(f"model file {required} not found; train a model first or check the path")
    try:
        description = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{json_path} is not a valid chainrule model description: {error}") from None
    if not isinstance(description, dict) or "network" not in description:
        raise ValueError(f"{json_path} is not a chainrule model description (no 'network' entry)")
    if description.get("format_version") != MODEL_FORMAT_VERSION:
        raise ValueError(
            f"{json_path} has model format {description.get('format_version')!r}; this "
            f"chainrule reads format {MODEL_FORMAT_VERSION}"
        )
    try:
        network = Network.from_config(description["network"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{json_path} describes an invalid network: {error}") from None
    try:
        with xp.load(npz_path, allow_pickle=False) as data:
            for k in range(network.n_layers):
                for name, target in ((f"W{k + 1}", network.weights[k]), (f"b{k + 1}", network.biases[k])):
                    if name not in data.files:
                        raise ValueError(f"array {name} is missing")
                    array = data[name]
                    if array.shape != target.shape:
                        raise ValueError(
                            f"array {name} has shape {array.shape}, expected {target.shape}"
                        )
                    target[...] = array
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{npz_path} is not a valid chainrule model file: {error}") from None
    if not xp.isfinite(network.parameters).all():
        raise ValueError(f"{npz_path} contains NaN or infinite weights")

    preprocessing = description.get("preprocessing")
    labels = description.get("label_mapping")
    return Model(
        network=network,
        preprocessor=None if preprocessing is None else Preprocessor.from_dict(preprocessing),
        label_mapping=None if labels is None else LabelMapping.from_dict(labels),
        class_names=description.get("class_names"),
        metadata=description.get("metadata") or {},
    )
