"""Optional logging of a training run to Weights & Biases.

``chainrule train --wandb_project NAME`` logs the run's settings as the W&B config, one
entry per epoch with the ``history.csv`` column names, and at the end the test metrics,
the confusion matrix and the sample images. The ``wandb`` package is an optional extra
(``pip install "chainrule[wandb]"``) and is imported only when a run is started.

Without network access or an account, set ``WANDB_MODE=offline``: W&B then writes the run
under ``$WANDB_DIR/wandb/offline-run-*`` and ``wandb sync`` uploads it later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TrackingError", "WandbTracker", "setup_help"]


class TrackingError(RuntimeError):
    """Weights & Biases could not start a run; the message explains how to fix it."""


def setup_help() -> str:
    """Return the three ways to get W&B logging working, as one line of text."""
    return (
        'install the extra with `pip install "chainrule[wandb]"`, log in with `wandb login` '
        "(or set WANDB_API_KEY), or run without an account by setting WANDB_MODE=offline"
    )


def _import_wandb():
    try:
        import wandb
    except ImportError as error:
        raise TrackingError(
            f"--wandb_project needs the wandb package, which could not be imported ({error}); "
            + setup_help()
        ) from None
    return wandb


class WandbTracker:
    """A started W&B run that logs epochs and final results.

    Use :meth:`start` to create one. An instance is also a :class:`chainrule.Trainer`
    callback: ``callback(trainer, row)`` logs the epoch's history row.

    Attributes
    ----------
    run : wandb.sdk.wandb_run.Run
        The W&B run; ``run.dir`` is where W&B keeps its files.
    """

    def __init__(self, run, wandb_module) -> None:
        self.run = run
        self._wandb = wandb_module

    @classmethod
    def start(
        cls,
        *,
        project: str,
        config: Mapping[str, Any],
        entity: str | None = None,
        name: str | None = None,
        directory: str | os.PathLike | None = None,
    ) -> WandbTracker:
        """Start a W&B run with ``config`` as its settings.

        Parameters
        ----------
        project, entity : str
            The W&B project and, optionally, the user or team that owns it.
        config : mapping
            The run's settings, as written to ``config.json``.
        name : str, optional
            The run's display name, for example the run directory's name.
        directory : path, optional
            Where W&B writes its files; W&B's default (``$WANDB_DIR`` or the current
            folder) when None.

        Raises
        ------
        TrackingError
            If ``wandb`` is not installed or the run cannot start (no login, no network).
        """
        wandb = _import_wandb()
        try:
            run = wandb.init(
                project=project,
                entity=entity,
                name=name,
                config=dict(config),
                dir=None if directory is None else os.fspath(directory),
                reinit="finish_previous",
            )
        # wandb raises several unrelated types here (UsageError without a login,
        # CommError without a network, AuthenticationError for a bad key), so the whole
        # family is caught and reported with the fixes.
        except Exception as error:  # noqa: BLE001
            raise TrackingError(
                f"Weights & Biases could not start a run in project {project!r} "
                f"({type(error).__name__}: {error}); " + setup_help()
            ) from None
        return cls(run, wandb)

    def __call__(self, trainer, row: Mapping[str, float]) -> None:
        self.log_epoch(row)

    def log_epoch(self, row: Mapping[str, float]) -> None:
        """Log one ``history.csv`` row under its column names, at step ``epoch``.

        NaN values (the validation columns of a run without validation data) are left
        out, so the W&B charts show gaps instead of zeros.
        """
        values = {
            key: float(value)
            for key, value in row.items()
            if value is not None and not (isinstance(value, float) and math.isnan(value))
        }
        values["epoch"] = int(row["epoch"])
        self.run.log(values, step=int(row["epoch"]))

    def log_results(
        self,
        metrics: Mapping[str, Any],
        *,
        labels: Sequence[int],
        predictions: Sequence[int],
        class_names: Sequence[str],
        samples_path: str | os.PathLike | None = None,
        confusion_path: str | os.PathLike | None = None,
    ) -> None:
        """Log the test metrics to the run summary, the confusion matrix and the figures.

        Parameters
        ----------
        metrics : mapping
            ``metrics.json``'s content; the scalars become ``test_<name>`` summary values.
        labels, predictions : sequence of int
            True and predicted class indices of the test split, for W&B's interactive
            confusion matrix.
        class_names : sequence of str
            A name per class index.
        samples_path, confusion_path : path, optional
            ``samples.png`` and ``confusion_matrix.png``, logged as images.
        """
        wandb = self._wandb
        for key in ("loss", "accuracy", "precision", "recall", "f1"):
            if key in metrics:
                self.run.summary[f"test_{key}"] = float(metrics[key])
        logged: dict[str, Any] = {
            "confusion_matrix": wandb.plot.confusion_matrix(
                y_true=[int(label) for label in labels],
                preds=[int(prediction) for prediction in predictions],
                class_names=[str(name) for name in class_names],
            )
        }
        if samples_path is not None:
            logged["samples"] = wandb.Image(
                os.fspath(samples_path), caption="one test image per class"
            )
        if confusion_path is not None:
            logged["confusion_matrix_image"] = wandb.Image(os.fspath(confusion_path))
        self.run.log(logged)

    def finish(self, exit_code: int = 0) -> None:
        """Close the run; a non-zero ``exit_code`` marks it as failed in W&B."""
        self.run.finish(exit_code=exit_code)
