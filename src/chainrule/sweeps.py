"""Hyperparameter sweeps with Optuna, on one machine or on many sharing a database.

A sweep file uses the Weights & Biases sweep format::

    method: random            # grid, random or bayes
    metric: {name: val_accuracy, goal: maximize}
    parameters:
      learning_rate: {values: [0.001, 0.0001]}
      num_layers: {min: 3, max: 5}
      weight_decay: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2}
      epochs: {value: 5}

Parameter names are ``chainrule train``'s long flags, checked against that command's own
parser, and every value is checked the way ``chainrule train`` would parse it. Each trial
runs one ``chainrule train`` configuration in the worker process and writes a normal run
directory.

How the pieces map onto Optuna:

- ``method``: ``grid`` is :class:`optuna.samplers.GridSampler`, ``random`` is
  :class:`~optuna.samplers.RandomSampler`, ``bayes`` is :class:`~optuna.samplers.TPESampler`
  (tree-structured Parzen estimators, with the constant liar so parallel workers do not
  propose the same point). Each worker takes a new index from the companion study
  ``<study>.workers`` and seeds its sampler with ``seed + index``; grid workers all use
  ``seed``, which fixes the order of the grid they share.
- The study lives in an SQLAlchemy storage: an SQLite file by default, or a PostgreSQL
  database that workers on several machines share.
- Exactly ``trials`` trials finish (state COMPLETE or PRUNED) across all workers. A worker
  claims a trial by creating it. It then counts the trials with smaller numbers that hold
  a place in the budget (finished, running or waiting), and when those fill the budget
  it releases its claim and waits. Optuna creates a study's trials one at a time (a row
  lock on PostgreSQL, the database lock on SQLite), so every smaller trial number is
  visible to that count.
- A trial whose training fails (divergence, a rejected configuration) is stored as FAIL
  with its message and replaced, except in grid search, which tries each point once.
- A worker that dies stops sending heartbeats. After the grace period another worker (or
  a rerun of the command) marks its trial FAIL and queues a copy with the same parameters,
  which the next free worker runs. Ctrl-C queues a copy of the interrupted trial too.
- The median pruner stops trials whose metric, reported after every epoch, is worse than
  the median of earlier trials at the same epoch. Pruned trials count toward ``trials``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import inspect
import io
import json
import math
import multiprocessing
import os
import re
import shlex
import socket
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

__all__ = [
    "COURSE_SPACE",
    "DISTRIBUTIONS",
    "MAX_GRID_POINTS",
    "METHODS",
    "METRICS",
    "WORKER_REGISTRY_SUFFIX",
    "Parameter",
    "SearchSpace",
    "SweepError",
    "SweepSettings",
    "TrialCounts",
    "check_space_against_train",
    "check_study_name",
    "count_trials",
    "course_space",
    "create_study",
    "load_space",
    "load_study",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "parse_constants",
    "parse_space",
    "register_worker",
    "resolve_trial_count",
    "run_name",
    "run_sweep",
    "run_worker",
    "storage_url",
    "sweepable_names",
    "train_argv",
    "train_parser",
    "trial_rows",
    "write_figures",
    "write_results",
]

METHODS = ("grid", "random", "bayes")
# W&B distribution names that chainrule samples; "categorical" and "constant" are the
# names W&B gives to ``values`` and ``value``.
DISTRIBUTIONS = ("uniform", "int_uniform", "log_uniform_values", "q_uniform", "categorical", "constant")
PARAMETER_KEYS = ("values", "value", "distribution", "min", "max", "q")
# Top-level keys of the W&B format that chainrule reads, and those it reports and ignores
# because trials run in-process (no program or command) and pruning replaces W&B's
# early termination.
KNOWN_KEYS = ("method", "metric", "parameters", "name", "description", "run_cap")
IGNORED_KEYS = {
    "program": "trials run `chainrule train` in the worker process",
    "command": "trials run `chainrule train` in the worker process",
    "early_terminate": "use --no-pruning to switch off chainrule's median pruner",
    "project": "use --wandb_project",
    "entity": "use --wandb_entity",
}
# Metrics are history.csv columns; "epoch" is left out because it measures nothing.
METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss", "learning_rate", "seconds")
GOALS = ("maximize", "minimize")
# Grid search runs every point of the grid. Beyond this many points a grid is refused,
# because a thousand trials of a minute each already take 17 hours on one worker.
MAX_GRID_POINTS = 1000
# chainrule train options that belong to the sweep, not to a trial.
NOT_SWEEPABLE = ("help", "output_dir", "resume", "overwrite", "quiet", "wandb_project", "wandb_entity")
# Short forms used in run names, e.g. "hl_3_bs_16_ac_tanh"; other names appear in full.
RUN_NAME_ABBREVIATIONS = {
    "epochs": "ep",
    "num_layers": "hl",
    "hidden_size": "hs",
    "hidden_sizes": "hs",
    "weight_decay": "wd",
    "learning_rate": "lr",
    "optimizer": "opt",
    "batch_size": "bs",
    "weight_init": "wi",
    "activation": "ac",
    "loss": "loss",
    "momentum": "mom",
    "beta1": "b1",
    "beta2": "b2",
    "epsilon": "eps",
}
# Study attribute with the sweep definition, written by the first command that opens the study.
_DEFINITION_ATTRIBUTE = "chainrule_sweep"
# Each worker takes the next trial number of this companion study as its index.
WORKER_REGISTRY_SUFFIX = ".workers"
SWEEP_FORMAT_VERSION = 1

# The course's sweep (CS6910/DA6401 assignment 1): 2 * 3 * 3 * 3 * 2 * 6 * 3 * 2 * 3
# = 11,664 configurations.
COURSE_SPACE: Mapping[str, Any] = {
    "name": "course",
    "method": "random",
    "metric": {"name": "val_accuracy", "goal": "maximize"},
    "parameters": {
        "epochs": {"values": [5, 10]},
        "num_layers": {"values": [3, 4, 5]},
        "hidden_size": {"values": [32, 64, 128]},
        "weight_decay": {"values": [0, 0.0005, 0.5]},
        "learning_rate": {"values": [1e-3, 1e-4]},
        "optimizer": {"values": ["sgd", "momentum", "nag", "rmsprop", "adam", "nadam"]},
        "batch_size": {"values": [16, 32, 64]},
        "weight_init": {"values": ["random", "Xavier"]},
        "activation": {"values": ["sigmoid", "tanh", "ReLU"]},
    },
}

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# Study names become folder names, so they keep to characters every file system takes.
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SweepError(RuntimeError):
    """A sweep could not run: unreachable storage, a conflicting study, failed workers."""


# ---------------------------------------------------------------------------------------
# The search space


@dataclass(frozen=True)
class Parameter:
    """One entry of ``parameters``: a constant, a list of values or a distribution.

    Attributes
    ----------
    name : str
        The ``chainrule train`` option's destination name, e.g. ``learning_rate``.
    distribution : str
        One of :data:`DISTRIBUTIONS`.
    values : tuple
        The choices of ``categorical``, or the single value of ``constant``.
    low, high : float or int, optional
        Bounds of ``uniform``, ``int_uniform``, ``log_uniform_values`` and ``q_uniform``,
        both included.
    q : float, optional
        Step of ``q_uniform``.
    """

    name: str
    distribution: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    q: float | None = None

    @property
    def is_swept(self) -> bool:
        """Whether trials can differ in this parameter."""
        return not (self.distribution == "constant" or len(self.values) == 1 and self.distribution == "categorical")

    def grid_values(self) -> list:
        """Return every value grid search visits, or raise ``ValueError`` for a continuous range."""
        if self.distribution in ("constant", "categorical"):
            return list(self.values)
        if self.distribution == "int_uniform":
            return list(range(int(self.low), int(self.high) + 1))
        if self.distribution == "q_uniform":
            count = int(math.floor((self.high - self.low) / self.q + 1e-9)) + 1
            return [_round_step(self.low + k * self.q, self.q) for k in range(count)]
        raise ValueError(
            f"grid search needs a finite set of values, but parameter {self.name!r} has the "
            f"continuous distribution {self.distribution!r}; list its values with `values:`, "
            "use int_uniform or q_uniform, or use method random or bayes"
        )

    def to_dict(self) -> dict:
        """Return the parameter in the W&B sweep format."""
        if self.distribution == "constant":
            return {"value": _encode_value(self.values[0])}
        if self.distribution == "categorical":
            return {"values": [_encode_value(value) for value in self.values]}
        entry = {"distribution": self.distribution, "min": self.low, "max": self.high}
        if self.q is not None:
            entry["q"] = self.q
        return entry


@dataclass(frozen=True)
class SearchSpace:
    """A parsed sweep definition.

    Attributes
    ----------
    method : str
        ``grid``, ``random`` or ``bayes``.
    metric : str
        A ``history.csv`` column, e.g. ``val_accuracy``.
    goal : str
        ``maximize`` or ``minimize``.
    parameters : tuple of Parameter
        In the order of the sweep file.
    name : str, optional
        The file's ``name``, the default study name.
    run_cap : int, optional
        The file's ``run_cap``, the default trial count.
    ignored : tuple of str
        One message per key that was read but is not used.
    """

    method: str
    metric: str
    goal: str
    parameters: tuple
    name: str | None = None
    run_cap: int | None = None
    ignored: tuple = ()

    @property
    def swept_names(self) -> list[str]:
        """Names of the parameters that vary between trials, in file order."""
        return [parameter.name for parameter in self.parameters if parameter.is_swept]

    def grid(self) -> dict[str, list]:
        """Return the grid as ``{name: values}`` for every swept parameter."""
        return {
            parameter.name: [_optuna_choice(value) for value in parameter.grid_values()]
            for parameter in self.parameters
            if parameter.is_swept
        }

    def grid_size(self) -> int:
        """Return the number of points of the grid (the product of the value counts)."""
        return math.prod(len(values) for values in self.grid().values())

    def with_method(self, method: str) -> SearchSpace:
        """Return a copy that uses ``method``."""
        return SearchSpace(
            _check_choice("method", method, METHODS), self.metric, self.goal, self.parameters,
            self.name, self.run_cap, self.ignored,
        )

    def with_constants(self, constants: Mapping[str, Any]) -> SearchSpace:
        """Return a copy where each name in ``constants`` is fixed to its value."""
        parameters = [p for p in self.parameters if p.name not in constants]
        parameters += [Parameter(name, "constant", (value,)) for name, value in constants.items()]
        return SearchSpace(
            self.method, self.metric, self.goal, tuple(parameters), self.name, self.run_cap,
            self.ignored,
        )

    def to_dict(self) -> dict:
        """Return the space in the W&B sweep format (without ignored keys)."""
        return {
            "method": self.method,
            "metric": {"name": self.metric, "goal": self.goal},
            "parameters": {parameter.name: parameter.to_dict() for parameter in self.parameters},
        }

    def suggest(self, trial: optuna.trial.Trial) -> dict[str, Any]:
        """Draw one configuration from ``trial``; return ``{name: value}`` in file order.

        Constants are not Optuna parameters, so they do not clutter the figures.
        """
        chosen = {}
        for parameter in self.parameters:
            kind = parameter.distribution
            if not parameter.is_swept:
                chosen[parameter.name] = parameter.values[0]
            elif kind == "categorical":
                choice = trial.suggest_categorical(
                    parameter.name, [_optuna_choice(value) for value in parameter.values]
                )
                chosen[parameter.name] = _decode_choice(choice)
            elif kind == "int_uniform":
                chosen[parameter.name] = trial.suggest_int(parameter.name, int(parameter.low), int(parameter.high))
            elif kind == "uniform":
                chosen[parameter.name] = trial.suggest_float(parameter.name, parameter.low, parameter.high)
            elif kind == "log_uniform_values":
                chosen[parameter.name] = trial.suggest_float(
                    parameter.name, parameter.low, parameter.high, log=True
                )
            else:  # q_uniform
                value = trial.suggest_float(parameter.name, parameter.low, parameter.high, step=parameter.q)
                chosen[parameter.name] = _round_step(value, parameter.q)
        return chosen


def _round_step(value: float, step: float) -> float | int:
    # Remove the binary noise of low + k * step (0.30000000000000004), and give whole
    # numbers as ints so an integer option parses them.
    decimals = max(0, -int(math.floor(math.log10(abs(step))))) + 6 if step else 12
    rounded = round(value, decimals)
    return int(rounded) if float(rounded).is_integer() and float(step).is_integer() else rounded


def _optuna_choice(value):
    # Optuna's categorical choices must be None, bool, int, float or str; a list value
    # (an option that takes several numbers) travels as a space-separated string.
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(str(item) for item in value) + "]"
    return value


def _decode_choice(choice):
    if isinstance(choice, str) and choice.startswith("[") and choice.endswith("]"):
        return [_number_or_text(item) for item in choice[1:-1].split()]
    return choice


def _encode_value(value):
    return list(value) if isinstance(value, tuple) else value


def _number_or_text(text: str):
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if _NUMBER.match(text):
        return float(text)
    return text


def _as_number(value, where: str) -> float | int:
    """Return ``value`` as a number; YAML 1.1 reads ``1e-3`` (no dot) as a string."""
    if isinstance(value, bool):
        raise TypeError(f"{where} must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return _number_or_text(value.strip())
    raise TypeError(f"{where} must be a number, got {value!r}")


def _check_choice(what: str, value, allowed: Sequence[str], source: str = "") -> str:
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        prefix = f"{source}: " if source else ""
        raise ValueError(f"{prefix}unknown {what} {value!r}; valid: {', '.join(allowed)}")
    return value.strip().lower()


def _check_value_type(value, where: str):
    """Return a sweep value as a scalar or a tuple, with numbers written as text converted.

    PyYAML reads YAML 1.1, where ``1e-3`` (no dot) is a string. Such strings become
    numbers here, so they sort, plot and name runs as numbers.
    """
    scalar = (type(None), bool, int, float, str)
    if isinstance(value, (list, tuple)):
        if not value or not all(isinstance(item, (int, float, str)) for item in value):
            raise TypeError(f"{where} must be a number, a string or a list of them, got {value!r}")
        return tuple(_number_or_text(item.strip()) if isinstance(item, str) else item for item in value)
    if not isinstance(value, scalar):
        raise TypeError(f"{where} must be a number, a string or a list of them, got {value!r}")
    if isinstance(value, str):
        return _number_or_text(value.strip())
    return value


def _parse_parameter(name: str, entry, source: str) -> Parameter:
    where = f"{source}: parameter {name!r}"
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"{where} must be a mapping such as {{values: [1, 2]}}, {{value: 1}} or "
            f"{{min: 1, max: 5}}, got {entry!r}"
        )
    unknown = [key for key in entry if key not in PARAMETER_KEYS]
    if unknown:
        raise ValueError(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; valid keys: "
            f"{', '.join(PARAMETER_KEYS)}"
        )
    distribution = entry.get("distribution")
    if distribution is not None:
        distribution = _check_choice(f"distribution for parameter {name!r}", distribution, DISTRIBUTIONS,
                                     source)

    if "value" in entry:
        if distribution not in (None, "constant") or "values" in entry or "min" in entry or "max" in entry:
            raise ValueError(f"{where} has `value` together with other settings; give only `value`")
        return Parameter(name, "constant", (_check_value_type(entry["value"], f"{where} value"),))

    if "values" in entry:
        values = entry["values"]
        if distribution not in (None, "categorical") or "min" in entry or "max" in entry:
            raise ValueError(f"{where} has `values` together with a distribution; give only `values`")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}: `values` must be a non-empty list, got {values!r}")
        checked = [_check_value_type(value, f"{where} value") for value in values]
        for index, value in enumerate(checked):
            if value in checked[:index]:
                raise ValueError(f"{where} lists the value {value!r} twice; list each value once")
        return Parameter(name, "categorical", tuple(checked))

    if "min" not in entry or "max" not in entry:
        raise ValueError(
            f"{where} needs `values`, `value`, or both `min` and `max` (with an optional "
            f"distribution among {', '.join(DISTRIBUTIONS[:4])})"
        )
    low = _as_number(entry["min"], f"{where} min")
    high = _as_number(entry["max"], f"{where} max")
    if distribution is None:
        # W&B's rule: integer bounds mean int_uniform, otherwise uniform.
        distribution = "int_uniform" if isinstance(low, int) and isinstance(high, int) else "uniform"
    if distribution in ("categorical", "constant"):
        raise ValueError(f"{where}: distribution {distribution!r} takes `values` or `value`, not min and max")
    if not low < high:
        raise ValueError(f"{where}: min must be smaller than max, got min {low} and max {high}")
    q = None
    if distribution == "int_uniform" and not (float(low).is_integer() and float(high).is_integer()):
        raise ValueError(f"{where}: int_uniform needs integer bounds, got min {low} and max {high}")
    if distribution == "int_uniform":
        low, high = int(low), int(high)
    if distribution == "log_uniform_values" and low <= 0:
        raise ValueError(
            f"{where}: log_uniform_values needs min > 0 (the bounds are the values themselves, "
            f"not their logarithms), got min {low}"
        )
    if distribution == "q_uniform":
        q = _as_number(entry.get("q", 1), f"{where} q")
        if not q > 0:
            raise ValueError(f"{where}: q must be > 0, got {q}")
    elif "q" in entry:
        raise ValueError(f"{where}: `q` belongs to distribution q_uniform, not {distribution}")
    return Parameter(name, distribution, (), low, high, q)


def parse_space(
    document: Mapping[str, Any],
    *,
    valid_names: Sequence[str] | None = None,
    source: str = "sweep definition",
) -> SearchSpace:
    """Parse a sweep definition in the W&B sweep format.

    Parameters
    ----------
    document : mapping
        The parsed YAML: ``method``, ``metric``, ``parameters`` and optionally ``name``,
        ``description`` and ``run_cap``. ``program``, ``command``, ``early_terminate``,
        ``project`` and ``entity`` are read and reported in ``SearchSpace.ignored``.
    valid_names : sequence of str, optional
        Allowed parameter names; without it any name passes (checked later against
        ``chainrule train``'s options by :func:`check_space_against_train`).
    source : str
        Where the definition came from, for messages (usually the file name).

    Raises
    ------
    ValueError
        For a missing or unknown key, method, metric, goal, distribution or parameter
        name; the message lists the valid ones.
    TypeError
        For a value of the wrong type, e.g. ``min: fast``.
    """
    if not isinstance(document, Mapping):
        raise ValueError(
            f"{source} must be a mapping with method, metric and parameters, got "
            f"{type(document).__name__}"
        )
    ignored = []
    for key in document:
        if key in IGNORED_KEYS:
            ignored.append(f"{key!r} is ignored: {IGNORED_KEYS[key]}")
        elif key not in KNOWN_KEYS:
            raise ValueError(
                f"{source} has the unknown key {key!r}; valid keys: {', '.join(KNOWN_KEYS)} "
                f"(read and ignored: {', '.join(IGNORED_KEYS)})"
            )

    if "method" not in document:
        raise ValueError(f"{source} has no `method`; add one of: {', '.join(METHODS)}")
    method = _check_choice("method", document["method"], METHODS, source)

    metric_entry = document.get("metric", {"name": "val_accuracy"})
    if isinstance(metric_entry, str):
        metric_entry = {"name": metric_entry}
    if not isinstance(metric_entry, Mapping):
        raise ValueError(f"{source}: `metric` must be a mapping such as {{name: val_accuracy, goal: maximize}}")
    for key in metric_entry:
        if key not in ("name", "goal"):
            ignored.append(f"metric key {key!r} is ignored")
    metric = _check_choice("metric", metric_entry.get("name", "val_accuracy"), METRICS, source)
    default_goal = "maximize" if metric.endswith("accuracy") else "minimize"
    goal = _check_choice("metric goal", metric_entry.get("goal", default_goal), GOALS, source)

    entries = document.get("parameters")
    if not isinstance(entries, Mapping) or not entries:
        raise ValueError(f"{source} needs a non-empty `parameters` mapping of option name to values")
    parameters = []
    for raw_name, entry in entries.items():
        name = str(raw_name).strip().removeprefix("--").replace("-", "_")
        if valid_names is not None and name not in valid_names:
            raise ValueError(
                f"{source}: unknown parameter {raw_name!r}; parameter names are `chainrule "
                f"train` long options: {', '.join(sorted(valid_names))}"
            )
        if any(parameter.name == name for parameter in parameters):
            raise ValueError(f"{source} lists parameter {name!r} twice")
        parameters.append(_parse_parameter(name, entry, source))

    run_cap = document.get("run_cap")
    if run_cap is not None and (isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap < 1):
        raise ValueError(f"{source}: run_cap must be a positive integer, got {run_cap!r}")
    name = document.get("name")
    return SearchSpace(method, metric, goal, tuple(parameters),
                       None if name is None else str(name), run_cap, tuple(ignored))


def load_space(path: str | os.PathLike, *, valid_names: Sequence[str] | None = None) -> SearchSpace:
    """Read a sweep file (YAML or JSON, W&B sweep format) and parse it with :func:`parse_space`."""
    path = Path(path)
    try:
        import yaml
    except ImportError as error:
        raise SweepError(
            f"reading {path} needs PyYAML ({error}); install it with `pip install \"chainrule[sweep]\"`"
        ) from None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"sweep file {path} not found; check the path") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    return parse_space(document, valid_names=valid_names, source=str(path))


def course_space() -> SearchSpace:
    """Return the course's search space (:data:`COURSE_SPACE`), random search, 11,664 points."""
    return parse_space(COURSE_SPACE, source="the course preset")


# ---------------------------------------------------------------------------------------
# chainrule train's options


class _RaisingParser(argparse.ArgumentParser):
    """An argument parser whose errors raise ``ValueError`` instead of exiting."""

    def error(self, message: str):
        raise ValueError(message)


def train_parser() -> argparse.ArgumentParser:
    """Build ``chainrule train``'s parser, raising ``ValueError`` on bad arguments."""
    from chainrule.cli import add_train_arguments

    parser = _RaisingParser(prog="chainrule train", add_help=False, allow_abbrev=False)
    add_train_arguments(parser)
    return parser


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Map every long option name (``learning_rate``) to its action."""
    options = {}
    for action in parser._actions:  # argparse has no public list of actions
        for option in action.option_strings:
            if option.startswith("--"):
                options.setdefault(option[2:].replace("-", "_"), action)
    return options


def sweepable_names(parser: argparse.ArgumentParser) -> list[str]:
    """Return the destination names of ``chainrule train``'s options a sweep may set."""
    names = {action.dest for action in _long_options(parser).values()}
    return sorted(names - set(NOT_SWEEPABLE))


def _canonical_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in _long_options(parser).values()}


def _option_tokens(action: argparse.Action, value) -> list[str]:
    """Return the command-line tokens that set ``action`` to ``value``."""
    option = next(o for o in action.option_strings if o.startswith("--"))
    if action.nargs == 0:
        # A switch (store_true, store_false): present exactly when value equals its const.
        if not isinstance(value, bool):
            raise ValueError(f"option {option} is a switch and takes true or false, got {value!r}")
        return [option] if value == action.const else []
    if isinstance(value, (list, tuple)):
        return [option, *(_format_token(item) for item in value)]
    return [option, _format_token(value)]


def _format_token(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def train_argv(parser: argparse.ArgumentParser, settings: Mapping[str, Any]) -> list[str]:
    """Return ``chainrule train`` arguments that set each named option to its value.

    Raises ``ValueError`` for an unknown name or a value the option rejects.
    """
    actions = _canonical_actions(parser)
    argv = []
    for name, value in settings.items():
        if name not in actions:
            raise ValueError(
                f"unknown chainrule train option {name!r}; valid: {', '.join(sweepable_names(parser))}"
            )
        argv += _option_tokens(actions[name], value)
    return argv


def check_space_against_train(space: SearchSpace, parser: argparse.ArgumentParser) -> None:
    """Check every name and value of ``space`` with ``chainrule train``'s parser.

    Each listed value, constant and distribution bound is parsed as ``chainrule train``
    would parse it on the command line, so a typo fails before the first trial.

    Raises
    ------
    ValueError
        Naming the parameter, the value, the option's message and the valid names.
    """
    valid = sweepable_names(parser)
    actions = _canonical_actions(parser)
    for parameter in space.parameters:
        if parameter.name not in valid:
            raise ValueError(
                f"unknown parameter {parameter.name!r}; parameter names are `chainrule train` "
                f"long options: {', '.join(valid)}"
            )
        action = actions[parameter.name]
        if parameter.distribution in ("constant", "categorical"):
            samples = list(parameter.values)
        elif parameter.distribution == "uniform" or parameter.distribution == "log_uniform_values":
            # A float drawn from the range must parse; an integer option rejects it.
            samples = [float(parameter.low), (parameter.low + parameter.high) / 2]
        else:
            samples = [parameter.low, parameter.high]
        for value in samples:
            try:
                parser.parse_args(_option_tokens(action, value))
            except ValueError as error:
                hint = ""
                if parameter.distribution in ("uniform", "log_uniform_values"):
                    hint = "; for an integer option use int_uniform or a list of values"
                raise ValueError(
                    f"parameter {parameter.name!r}: value {value!r} is not accepted by "
                    f"chainrule train ({error}){hint}"
                ) from None


def parse_constants(assignments: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Parse ``--set NAME=VALUE`` assignments into ``{name: value}``.

    ``VALUE`` is read as YAML (``0.5``, ``true``, ``[128, 64]``), so it takes the same
    spellings as a sweep file.
    """
    import yaml

    valid = sweepable_names(parser)
    constants = {}
    for assignment in assignments:
        name, separator, text = assignment.partition("=")
        if not separator or not name.strip():
            raise ValueError(f"--set expects NAME=VALUE, e.g. --set dataset=mnist, got {assignment!r}")
        name = name.strip().removeprefix("--").replace("-", "_")
        if name not in valid:
            raise ValueError(
                f"--set {name}: unknown chainrule train option; valid names: {', '.join(valid)}"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text  # e.g. "a: b" with a colon; taken as the plain text
        constants[name] = _check_value_type(value, f"--set {name}")
    return constants


def run_name(space: SearchSpace, values: Mapping[str, Any]) -> str:
    """Return a name that reads as the swept values, e.g. ``hl_3_bs_16_ac_tanh``.

    Only swept parameters appear, in the order of the sweep file; constants are the same
    for every trial and would only lengthen the name.
    """
    parts = []
    for name in space.swept_names:
        value = values[name]
        if isinstance(value, (list, tuple)):
            text = "-".join(_format_name_value(item) for item in value)
        else:
            text = _format_name_value(value)
        parts.append(f"{RUN_NAME_ABBREVIATIONS.get(name, name)}_{text}")
    name = "_".join(parts) or "trial"
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def _format_name_value(value) -> str:
    if isinstance(value, float):
        # 1e+30 reads as 1e30; a "+" would otherwise become "-" in the file name.
        return format(value, "g").replace("e+", "e")
    return str(value).lower()


# ---------------------------------------------------------------------------------------
# Storage and study


def check_study_name(name: str) -> str:
    """Return ``name``, or raise ``ValueError`` unless it can name the sweep folder."""
    if not isinstance(name, str) or not _STUDY_NAME.match(name):
        raise ValueError(
            f"study name {name!r} is invalid: use letters, digits, '.', '_' and '-', starting "
            "with a letter or digit (it names the folder sweeps/<study>); pass --study NAME"
        )
    return name


def _import_optuna():
    try:
        import optuna
    except ImportError as error:
        raise SweepError(
            f"sweeps need Optuna ({error}); install it with `pip install \"chainrule[sweep]\"`"
        ) from None
    return optuna


def storage_url(url: str | None, study_name: str, base: str | os.PathLike = ".") -> str:
    """Return the SQLAlchemy URL of the study's storage.

    Without ``url`` this is the SQLite file ``sweeps/<study>/study.db`` under ``base``
    (its folder is created). A ``postgresql://`` or ``postgres://`` URL is pointed at
    psycopg 3 when psycopg2 is not installed, since SQLAlchemy picks psycopg2 for that
    scheme.
    """
    if url is None:
        path = (Path(base) / "sweeps" / study_name / "study.db").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    # SQLAlchemy 1.4 and later no longer read the "postgres" scheme that some hosts print.
    url = re.sub(r"^postgres://", "postgresql://", url)
    if url.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def display_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is shown without change
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


# Fragments of database errors that retrying cannot fix (PostgreSQL's wording).
_PERMANENT_ERRORS = ("password authentication failed", "no password supplied", "does not exist",
                     "permission denied")


def _retry_callback_class():
    optuna = _import_optuna()
    # Optuna 4.9 renamed RetryFailedTrialCallback; both queue a copy of a dead trial.
    return getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or (
        optuna.storages.RetryFailedTrialCallback
    )


def open_storage(url: str, *, heartbeat_interval: int, grace_period: int, max_retry: int = 3,
                 attempts: int = 5, wait_seconds: float = 1.0):
    """Open (and create if needed) the Optuna storage at ``url`` with heartbeats.

    A trial whose heartbeat is older than ``grace_period`` seconds is marked FAIL and a
    copy with the same parameters is queued, up to ``max_retry`` times per trial.

    Raises
    ------
    SweepError
        When the database cannot be reached after ``attempts`` tries.
    """
    optuna = _import_optuna()
    import sqlalchemy.exc

    retry_class = _retry_callback_class()
    callback_keyword = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
        else "failed_trial_callback"
    )
    if url.startswith("sqlite"):
        # Several worker processes write to one SQLite file; wait for its lock instead
        # of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    last_error = None
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", FutureWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    **{callback_keyword: retry_class(max_retry=max_retry)},
                )
        except ImportError as error:
            raise SweepError(
                f"the database driver for {display_url(url)} is not installed ({error}); for "
                "PostgreSQL install psycopg with `pip install \"psycopg[binary]\"` and use a "
                "postgresql+psycopg:// URL"
            ) from None
        except sqlalchemy.exc.ArgumentError as error:
            raise ValueError(f"--storage {display_url(url)} is not a valid SQLAlchemy URL: {error}") from None
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.IntegrityError, optuna.exceptions.StorageInternalError) as error:
            # Another machine may be creating the same tables, or a starting server may
            # refuse connections for a moment. A wrong password or database name stays
            # wrong, so those end the retries.
            last_error = error
            if any(fragment in str(error) for fragment in _PERMANENT_ERRORS):
                break
            time.sleep(wait_seconds)
    raise SweepError(
        f"could not open the study storage {display_url(url)}: "
        f"{str(last_error).splitlines()[0]}; check that the database server is running and "
        "that the URL, user and password are right"
    )


def sweep_definition(space: SearchSpace) -> dict:
    """Return what a study stores to recognise its sweep: format, space and metric."""
    return {"format_version": SWEEP_FORMAT_VERSION, "space": space.to_dict()}


def create_study(storage, study_name: str, space: SearchSpace):
    """Create the study if it does not exist, store the sweep definition, and return it.

    Raises
    ------
    SweepError
        When a study of that name exists with another search space or metric.
    """
    optuna = _import_optuna()
    direction = "maximize" if space.goal == "maximize" else "minimize"
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=direction, load_if_exists=True
    )
    if _DEFINITION_ATTRIBUTE not in study.user_attrs:
        study.set_user_attr(_DEFINITION_ATTRIBUTE, sweep_definition(space))
    _check_definition(study, space, storage)
    return study


def _check_definition(study, space: SearchSpace, storage) -> None:
    stored = study.user_attrs.get(_DEFINITION_ATTRIBUTE)
    expected = json.loads(json.dumps(sweep_definition(space)))
    if stored != expected:
        raise SweepError(
            f"study {study.study_name!r} in {display_url(storage.url)} was created with another "
            f"sweep definition:\n  stored:    {json.dumps(stored)}\n  requested: "
            f"{json.dumps(expected)}\nuse the same sweep file and --set options, or another --study name"
        )


def load_study(storage, study_name: str, space: SearchSpace, *, sampler=None, pruner=None,
               attempts: int = 30, wait_seconds: float = 1.0):
    """Load a study another process created, waiting while it is half created.

    The study row and its definition are written in two steps, so a worker that starts
    in between waits up to ``attempts * wait_seconds`` seconds for the definition.
    """
    optuna = _import_optuna()
    for _ in range(attempts):
        try:
            study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:
            study = None
        if study is not None and _DEFINITION_ATTRIBUTE in study.user_attrs:
            _check_definition(study, space, storage)
            return study
        time.sleep(wait_seconds)
    raise SweepError(
        f"study {study_name!r} in {display_url(storage.url)} was not created within "
        f"{attempts * wait_seconds:g} seconds; start the sweep command, which creates it, first"
    )


def register_worker(storage, study_name: str) -> int:
    """Return a worker index no other worker of the study has had, on any machine.

    The index is the number of a new trial in the companion study
    ``<study_name>.workers``. Optuna numbers the trials of a study one at a time, so two
    workers that start in the same instant on two machines still get different indices.
    A rerun gets new ones and does not redraw the points of the first run. The trial
    records the worker's host and process id, and its value is the index.
    """
    optuna = _import_optuna()
    registry = optuna.create_study(
        storage=storage, study_name=study_name + WORKER_REGISTRY_SUFFIX, load_if_exists=True
    )
    with warnings.catch_warnings():
        # Optuna warns that heartbeats belong to Study.optimize; this trial only records
        # the worker and is finished at once.
        warnings.simplefilter("ignore", UserWarning)
        trial = registry.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    registry.tell(trial, float(trial.number))
    return trial.number


def make_sampler(space: SearchSpace, seed: int, worker_index: int):
    """Return the Optuna sampler for ``space.method``, seeded with ``seed + worker_index``.

    Grid search is the exception: every worker uses ``seed`` itself, because the seed
    shuffles the grid and Optuna's grid sampler gives trial ``k`` the ``k``-th point of
    that order, which only works when all workers share it.
    """
    optuna = _import_optuna()
    if space.method == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    seed += worker_index
    if space.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(pruning: bool):
    """Return the median pruner, or a pruner that never prunes.

    The median pruner acts once 5 trials have finished, and from epoch 2 on (steps are
    epoch numbers, counted from 1), so every trial trains at least two epochs before it
    is compared with others.
    """
    optuna = _import_optuna()
    if not pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)


def _outcome(trial, grid: bool) -> str:
    """Classify a trial for the budget: ``done``, ``pending``, ``failed`` or ``ignored``.

    ``done`` trials (COMPLETE and PRUNED) and ``pending`` ones (RUNNING, and WAITING
    copies) take a place in the budget. A trial whose training failed takes one only in
    grid search, which tries every point once and never replaces a failed point. Released
    claims and trials of dead or interrupted workers (queued again as a copy) are
    ``ignored``.
    """
    state = trial.state.name
    if state in ("COMPLETE", "PRUNED"):
        return "done"
    if state in ("RUNNING", "WAITING"):
        return "pending"
    if state == "FAIL" and "error" in trial.user_attrs:
        return "done" if grid else "failed"
    return "ignored"


@dataclass(frozen=True)
class TrialCounts:
    """Trial counts of a study, by their place in the budget.

    Attributes
    ----------
    done : int
        Trials that used up their place: COMPLETE and PRUNED, plus, in grid search,
        those whose training failed.
    running, waiting : int
        RUNNING trials, and WAITING copies of trials that are to run again.
    complete, pruned, failed : int
        Trials by state; ``failed`` counts failed training, not released claims or
        trials of dead workers.
    """

    done: int = 0
    running: int = 0
    waiting: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0

    @property
    def finished(self) -> int:
        """COMPLETE plus PRUNED trials."""
        return self.complete + self.pruned


def count_trials(study, grid: bool) -> TrialCounts:
    """Count the study's trials for the budget (see :func:`_outcome`)."""
    done = 0
    states = {"COMPLETE": 0, "PRUNED": 0, "RUNNING": 0, "WAITING": 0, "FAIL": 0}
    for trial in study.get_trials(deepcopy=False):
        if _outcome(trial, grid) == "done":
            done += 1
        if trial.state.name != "FAIL" or "error" in trial.user_attrs:
            states[trial.state.name] += 1
    return TrialCounts(done, states["RUNNING"], states["WAITING"], states["COMPLETE"],
                       states["PRUNED"], states["FAIL"])


# ---------------------------------------------------------------------------------------
# Workers


@dataclass
class SweepSettings:
    """Everything a worker needs; plain data, so it crosses to a spawned process.

    Attributes
    ----------
    space : SearchSpace
        With the ``--set`` constants already folded in.
    trials : int
        Finished trials (COMPLETE or PRUNED) wanted across all workers.
    study_name, storage : str
        The study and its SQLAlchemy URL.
    output_dir : str
        The sweep directory: trial runs go to ``output_dir/runs``.
    seed : int
        Worker ``i`` seeds its sampler with ``seed + i``.
    workers : int
        Worker processes started by this command.
    pruning : bool
        Use the median pruner.
    heartbeat_interval, grace_period : int
        Seconds between heartbeats, and the age after which a trial counts as dead.
    max_failures : int
        A worker stops after this many of its trials failed.
    threads : int, optional
        BLAS threads per trial, when ``chainrule train`` has ``--threads`` and the space
        does not set it.
    wandb_project, wandb_entity : str, optional
        Log every trial to Weights & Biases.
    trial_figures : bool
        Write each trial's ``curves.png``, ``confusion_matrix.png`` and ``samples.png``.
    quiet : bool
        Print nothing but errors.
    """

    space: SearchSpace
    trials: int
    study_name: str
    storage: str
    output_dir: str
    seed: int = 0
    workers: int = 1
    pruning: bool = True
    heartbeat_interval: int = 60
    grace_period: int = 120
    max_failures: int = 10
    threads: int | None = None
    wandb_project: str | None = None
    wandb_entity: str | None = None
    trial_figures: bool = False
    quiet: bool = False


class _ClaimReleased(Exception):
    """The trial was created after the budget had been filled; it is released unrun."""


class _TrialFailed(Exception):
    """Training of one configuration failed in a way that does not stop the worker."""


def _print(settings: SweepSettings, line: str) -> None:
    if not settings.quiet:
        print(line, flush=True)


def _trial_value(rows: list[dict], trainer, metric: str) -> float:
    """Return the metric of the model the trial keeps.

    That is the last epoch's row, or the best epoch's when training restored the best
    weights at the end (early stopping with patience).

    Raises
    ------
    _TrialFailed
        When no epoch was recorded, or the metric is NaN (a ``val_*`` metric without
        validation data).
    """
    if not rows:
        raise _TrialFailed("training finished without recording an epoch")
    row = rows[-1]
    if trainer is not None and trainer.restore_best_weights and trainer.best_epoch is not None:
        row = next((r for r in rows if r["epoch"] == trainer.best_epoch), row)
    value = float(row[metric])
    if math.isnan(value):
        raise _TrialFailed(
            f"the metric {metric} is NaN because the run has no validation data; keep "
            "val_fraction above 0 or use a train_* metric"
        )
    return value


class _Objective:
    """Run one trial: claim, draw a configuration, train it, report epochs, return the metric."""

    def __init__(self, settings: SweepSettings, study, worker_index: int, parser):
        self.settings = settings
        self.study = study
        self.worker_index = worker_index
        self.parser = parser
        self.outcome = None
        self.trial_number = None

    def __call__(self, trial) -> float:
        optuna = _import_optuna()
        settings, space = self.settings, self.settings.space
        self.trial_number = trial.number
        self.outcome = "released"
        frozen = self._claim(trial)

        values = space.suggest(trial)
        name = run_name(space, values)
        run_dir = _claim_run_directory(Path(settings.output_dir) / "runs", name, trial.number)
        trial.set_user_attr("run_name", name)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", self.worker_index)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("command", shlex.join(["chainrule", "train", *train_argv(self.parser, values)]))
        retried = frozen.system_attrs.get("failed_trial")
        if retried is not None:
            _print(settings, f"trial {trial.number}: retrying trial {retried}, whose worker stopped")

        rows: list[dict] = []
        trainers = []

        def report(trainer, row) -> None:
            # Called by the trainer after every epoch.
            trainers[:] = [trainer]
            rows.append(dict(row))
            value = float(row[space.metric])
            if math.isnan(value):
                return
            trial.report(value, int(row["epoch"]))
            # Pruning after the last epoch would only throw a finished result away.
            if row["epoch"] < trainer.epochs and trial.should_prune():
                raise optuna.TrialPruned(
                    f"{space.metric} {value:.4f} at epoch {row['epoch']} is worse than the median "
                    "of earlier trials"
                )

        started = time.perf_counter()
        self.outcome = "failed"
        try:
            self._train(values, run_dir, report)
            value = _trial_value(rows, trainers[0] if trainers else None, space.metric)
        except optuna.TrialPruned:
            self.outcome = "pruned"
            _print(settings, f"trial {trial.number} {name}: pruned at epoch {len(rows)} "
                             f"({time.perf_counter() - started:.1f} s) [worker {self.worker_index}]")
            raise
        except _TrialFailed as error:
            trial.set_user_attr("error", str(error))
            _print(settings, f"trial {trial.number} {name}: failed: {error} [worker {self.worker_index}]")
            raise
        self.outcome = "complete"
        _print(settings, f"trial {trial.number} {name}: {space.metric} {value:.4f} "
                         f"({time.perf_counter() - started:.1f} s) [worker {self.worker_index}]")
        return value

    def _claim(self, trial):
        """Keep ``trial`` if it fits in the budget and return its stored copy, else release it."""
        # Trials are numbered in creation order and each is visible once created, so the
        # live trials with smaller numbers are exactly the claims made before this one.
        trials = self.study.get_trials(deepcopy=False)
        grid = self.settings.space.method == "grid"
        ahead = [
            t for t in trials
            if t.number < trial.number and _outcome(t, grid) in ("done", "pending")
        ]
        if len(ahead) >= self.settings.trials:
            trial.set_user_attr("released", True)
            raise _ClaimReleased(f"{len(ahead)} trials were claimed first")
        return next(t for t in trials if t.number == trial.number)

    def _train(self, values: Mapping[str, Any], run_dir: Path, report) -> None:
        from chainrule.cli import CommandError
        from chainrule.tracking import TrackingError
        from chainrule.training import TrainingDiverged

        settings = self.settings
        extra = {}
        actions = _canonical_actions(self.parser)
        if settings.threads is not None and "threads" in actions and "threads" not in values:
            extra["threads"] = settings.threads
        if settings.wandb_project is not None:
            extra["wandb_project"] = settings.wandb_project
            if settings.wandb_entity is not None:
                extra["wandb_entity"] = settings.wandb_entity
        argv = train_argv(self.parser, {**values, **extra})
        try:
            _run_training(self.parser, argv, run_dir, report, figures=settings.trial_figures)
        except TrainingDiverged as error:
            raise _TrialFailed(str(error)) from None
        except (CommandError, ValueError) as error:
            # A combination chainrule train rejects, or data it cannot read.
            raise _TrialFailed(f"invalid configuration: {error}") from None
        except TrackingError as error:
            # Every trial would fail the same way, so the worker stops.
            raise SweepError(str(error)) from None


def _claim_run_directory(root: Path, name: str, number: int) -> Path:
    """Create and return ``root/name``, or ``root/name-trial<number>`` when that exists.

    ``mkdir`` either creates the folder or fails, so two workers that draw the same
    configuration never share a run directory.
    """
    root.mkdir(parents=True, exist_ok=True)
    for candidate in (root / name, root / f"{name}-trial{number}"):
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    # Both names exist only when an earlier study wrote to this sweep directory, so its
    # files stay and this trial gets a name of its own.
    candidate = root / f"{name}-trial{number}-{os.getpid()}"
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def _run_training(parser, argv: list[str], run_dir: Path, callback, *, figures: bool) -> None:
    """Run ``chainrule train`` with ``argv`` in this process, calling ``callback`` each epoch."""
    from chainrule.cli import build_train_config, run_training

    config = build_train_config(parser.parse_args(argv))
    run_training(config, run_dir, overwrite=True, quiet=True, callbacks=[callback], figures=figures)


def run_worker(settings: SweepSettings) -> int:
    """Run trials until the study has ``settings.trials`` finished trials; return an exit code.

    The worker takes a new index from :func:`register_worker` and seeds its sampler with
    ``settings.seed + index``. Returns 0 when the budget is reached, 1 when this worker
    stopped on failures, 130 on Ctrl-C.
    """
    optuna = _import_optuna()
    from chainrule.training import TrainingInterrupted

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    parser = train_parser()
    storage = open_storage(settings.storage, heartbeat_interval=settings.heartbeat_interval,
                           grace_period=settings.grace_period)
    index = register_worker(storage, settings.study_name)
    study = load_study(storage, settings.study_name, settings.space,
                       sampler=make_sampler(settings.space, settings.seed, index),
                       pruner=make_pruner(settings.pruning))
    objective = _Objective(settings, study, index, parser)
    # Idle workers poll only at the end of a sweep, waiting for the last trials.
    poll_seconds = min(settings.heartbeat_interval, 1)
    failures = 0
    grid = settings.space.method == "grid"
    try:
        while True:
            counts = count_trials(study, grid)
            if counts.done >= settings.trials:
                return 0
            if counts.done + counts.running >= settings.trials:
                # Every remaining place is taken by a running trial; wait in case one
                # fails or its worker dies, then take its place. A WAITING copy does not
                # make this worker wait: asking for a trial runs it.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                time.sleep(poll_seconds)
                continue
            # A released claim needs no pause: the next count shows the budget full and
            # waits there.
            study.optimize(objective, n_trials=1, catch=(_ClaimReleased, _TrialFailed))
            if objective.outcome == "failed":
                failures += 1
                if failures >= settings.max_failures:
                    print(f"worker {index}: stopping after {failures} failed trials; check the "
                          "errors in trials.csv (a learning rate range that diverges?)",
                          file=sys.stderr, flush=True)
                    return 1
    except (KeyboardInterrupt, TrainingInterrupted):
        if objective.trial_number is not None:
            _queue_interrupted_trial(study, objective.trial_number)
        print(f"worker {index}: interrupted", file=sys.stderr, flush=True)
        return 130
    except SweepError as error:
        print(f"worker {index}: error: {error}", file=sys.stderr, flush=True)
        return 1


def _queue_interrupted_trial(study, number: int) -> None:
    """Queue a copy of trial ``number`` if Ctrl-C stopped it, so a rerun trains it again.

    The copy keeps the parameters and, in grid search, the grid point, which Optuna's
    grid sampler otherwise takes as done once the trial has failed.
    """
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or trial.state.name != "FAIL":
        return
    if trial.user_attrs.get("released") or "error" in trial.user_attrs:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _retry_callback_class()(max_retry=None)(study, trial)


def _worker_main(settings: SweepSettings) -> None:
    """Entry point of a spawned worker process."""
    sys.exit(run_worker(settings))


# ---------------------------------------------------------------------------------------
# The sweep command


def resolve_trial_count(space: SearchSpace, trials: int | None) -> int:
    """Return the number of trials to finish, checking it against the method.

    Grid search runs every grid point once, so its count is the grid size; random and
    bayes need ``trials`` or the sweep file's ``run_cap``.
    """
    if space.method == "grid":
        size = space.grid_size()
        if size > MAX_GRID_POINTS:
            raise ValueError(
                f"grid search over this space would run all {size:,} points; grids above "
                f"{MAX_GRID_POINTS:,} points are refused. Use method random or bayes with "
                "--trials N, or list fewer values"
            )
        if trials is not None and trials != size:
            raise ValueError(
                f"grid search runs all {size:,} points of the grid, but --trials is {trials}; "
                "drop --trials, or use method random for a sample of the grid"
            )
        return size
    if trials is None:
        trials = space.run_cap
    if trials is None:
        raise ValueError(
            f"method {space.method} needs a trial count: pass --trials N or set run_cap in the sweep file"
        )
    if trials < 1:
        raise ValueError(f"--trials must be a positive integer, got {trials}")
    return trials


def run_sweep(settings: SweepSettings) -> int:
    """Create the study, run ``settings.workers`` workers, write the results; return an exit code.

    One worker runs in this process; more run as spawned processes. Starting the same
    command on another machine with the same storage and study adds workers to the sweep.
    """
    optuna = _import_optuna()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(settings.storage, heartbeat_interval=settings.heartbeat_interval,
                           grace_period=settings.grace_period)
    study = create_study(storage, settings.study_name, settings.space)

    grid = settings.space.method == "grid"
    counts = count_trials(study, grid)
    _print(settings, (
        f"sweep {settings.study_name!r}: {settings.space.method} search for {settings.trials} "
        f"finished trials ({counts.finished} finished so far), {settings.workers} worker(s) here, "
        f"storage {display_url(settings.storage)}, results in {settings.output_dir}"
    ))
    for message in settings.space.ignored:
        _print(settings, f"note: {message}")

    codes = []
    if settings.workers == 1:
        codes.append(run_worker(settings))
    else:
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(target=_worker_main, args=(settings,), name=f"sweep-worker-{i}")
            for i in range(settings.workers)
        ]
        for process in processes:
            process.start()
        try:
            for process in processes:
                process.join()
        except KeyboardInterrupt:
            # The workers got the same Ctrl-C; let them record their trials and exit.
            for process in processes:
                process.join()
        codes = [process.exitcode for process in processes]

    study = optuna.load_study(study_name=settings.study_name, storage=storage)
    counts = count_trials(study, grid)
    write_results(study, settings)
    _print(settings, f"{counts.finished} of {settings.trials} trials finished "
                     f"({counts.pruned} pruned, {counts.failed} failed); results in {settings.output_dir}")
    if 130 in codes:
        return 130
    if counts.finished >= settings.trials:
        return 0
    if grid and counts.done >= settings.trials:
        print(f"error: {counts.failed} grid point(s) failed; their errors are in the error "
              f"column of {Path(settings.output_dir) / 'trials.csv'}", file=sys.stderr, flush=True)
    else:
        print(f"error: the sweep stopped with {counts.finished} of {settings.trials} trials "
              f"finished (worker exit codes {codes}); run the same command again to continue",
              file=sys.stderr, flush=True)
    return 1


# ---------------------------------------------------------------------------------------
# Results


def _format_time(moment) -> str:
    return "" if moment is None else moment.isoformat(timespec="milliseconds")


def trial_rows(study, space: SearchSpace) -> list[dict]:
    """Return one dict per trial (released claims left out), for ``trials.csv``."""
    rows = []
    names = [parameter.name for parameter in space.parameters]
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("released"):
            continue
        duration = ""
        if trial.datetime_start is not None and trial.datetime_complete is not None:
            duration = f"{(trial.datetime_complete - trial.datetime_start).total_seconds():.3f}"
        row = {
            "number": trial.number,
            "state": trial.state.name,
            space.metric: "" if trial.value is None else repr(float(trial.value)),
            "last_epoch": max(trial.intermediate_values, default=""),
            "run_name": trial.user_attrs.get("run_name", ""),
        }
        for name in names:
            value = trial.params.get(name, next(
                (p.values[0] for p in space.parameters if p.name == name and not p.is_swept), ""
            ))
            row[name] = _decode_choice(value)
        row.update({
            "worker": trial.user_attrs.get("worker", ""),
            "host": trial.user_attrs.get("host", ""),
            "pid": trial.user_attrs.get("pid", ""),
            "started": _format_time(trial.datetime_start),
            "completed": _format_time(trial.datetime_complete),
            "duration_seconds": duration,
            "retry_of": trial.system_attrs.get("failed_trial", ""),
            "run_dir": trial.user_attrs.get("run_dir", ""),
            "error": trial.user_attrs.get("error", ""),
        })
        rows.append(row)
    return rows


def _atomic_write_text(path: Path, text: str) -> None:
    from chainrule.training import atomic_write_text

    atomic_write_text(path, text)


def write_results(study, settings: SweepSettings) -> dict[str, Path]:
    """Write ``trials.csv``, ``best.json``, ``best_command.txt`` and the figures.

    Returns the paths written, by name. The best trial is Optuna's: the best value among
    COMPLETE trials (a pruned trial never counts as best).
    """
    space = settings.space
    output = Path(settings.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    written = {}

    rows = trial_rows(study, space)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: " ".join(map(str, value)) if isinstance(value, list) else value
                             for key, value in row.items()})
    written["trials"] = output / "trials.csv"
    _atomic_write_text(written["trials"], buffer.getvalue())

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        best_values = {
            parameter.name: _decode_choice(best.params[parameter.name]) if parameter.is_swept
            else parameter.values[0]
            for parameter in space.parameters
        }
        command = best.user_attrs.get("command") or shlex.join(["chainrule", "train", *train_argv(train_parser(), best_values)])
        summary = {
            "study": settings.study_name,
            "metric": space.metric,
            "goal": space.goal,
            "value": best.value,
            "number": best.number,
            "run_name": best.user_attrs.get("run_name"),
            "run_dir": best.user_attrs.get("run_dir"),
            "parameters": {key: _encode_value(value) for key, value in best_values.items()},
            "command": command,
        }
        written["best"] = output / "best.json"
        _atomic_write_text(written["best"], json.dumps(summary, indent=2) + "\n")
        written["best_command"] = output / "best_command.txt"
        _atomic_write_text(written["best_command"], command + "\n")
    written.update(write_figures(study, settings))
    return written


def write_figures(study, settings: SweepSettings) -> dict[str, Path]:
    """Write Optuna's matplotlib figures as PNG files into the sweep directory.

    ``optimization_history.png`` (the metric per trial and the best so far),
    ``parallel_coordinate.png`` and ``param_importances.png`` (fANOVA, which needs at
    least two complete trials and a swept parameter). A figure Optuna cannot draw yet is
    skipped with a note.
    """
    optuna = _import_optuna()
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        # Draw off-screen unless the caller already chose a backend (e.g. a notebook).
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    from chainrule.plots import save_figure

    output = Path(settings.output_dir)
    metric = settings.space.metric
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    swept = [name for name in settings.space.swept_names if any(name in t.params for t in complete)]
    figures = {
        "optimization_history": lambda: optuna_plots.plot_optimization_history(study, target_name=metric),
        "parallel_coordinate": lambda: optuna_plots.plot_parallel_coordinate(
            study, params=swept or None, target_name=metric),
        "param_importances": lambda: optuna_plots.plot_param_importances(
            study, target_name=metric,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=settings.seed)),
    }
    written = {}
    for name, draw in figures.items():
        if not complete or (name != "optimization_history" and (len(complete) < 2 or not swept)):
            _print(settings, f"note: {name}.png skipped: it needs at least two complete trials "
                             "and a swept parameter")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # matplotlib warns when every trial has the same value of a parameter.
            warnings.simplefilter("ignore", UserWarning)
            try:
                axes = draw()
            except (ValueError, RuntimeError, ZeroDivisionError) as error:
                _print(settings, f"note: {name}.png skipped: {error}")
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(10, 6)
        with contextlib.suppress(Exception):
            figure.tight_layout()
        written[name] = save_figure(figure, output / f"{name}.png")
        plt.close(figure)
    return written
