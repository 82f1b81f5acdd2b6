"""The ``chainrule sweep`` subcommand: hyperparameter sweeps with Optuna.

``chainrule.cli`` calls :func:`register` to add the subcommand. Optuna, PyYAML and the
training code are imported only when a sweep runs, so ``chainrule --help`` stays fast.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

from chainrule.argument_types import (
    non_negative_int as _non_negative_int,
    positive_int as _positive_int,
)

__all__ = ["register", "build_settings"]

# Snake or kebab twins of the long options, accepted but hidden from --help.
_ALIASES: set[str] = set()

_DESCRIPTION = """\
Run a hyperparameter sweep: many `chainrule train` configurations drawn from a search
space, each trained in a worker process, recorded in an Optuna study.

The search space is a Weights & Biases sweep file (method grid, random or bayes; metric;
parameters named after `chainrule train`'s long options) or --preset course. Exactly
--trials trials finish across all workers; pruned trials count toward that number, failed
ones do not (except in grid search, which tries each point once). The study lives in sweeps/<study>/study.db unless --storage names a database:
running the same command on another machine with the same PostgreSQL --storage and
--study adds its workers to the sweep, and rerunning the command after a crash continues
the sweep.

The sweep directory (--output-dir) receives runs/<run name>/ for every trial, trials.csv,
best.json, best_command.txt (the best configuration as a chainrule train command) and the
figures optimization_history.png, parallel_coordinate.png and param_importances.png."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option in the spelling it was declared with, without its twin."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if action.option_strings:
            shown = copy.copy(action)
            shown.option_strings = [s for s in action.option_strings if s not in _ALIASES]
            return super()._format_action_invocation(shown)
        return super()._format_action_invocation(action)


def _add_option(parser, *spellings: str, **options) -> argparse.Action:
    """Add an option under its spellings plus the snake or kebab twin of each long one."""
    names = list(spellings)
    for spelling in spellings:
        if spelling.startswith("--"):
            for twin in (spelling.replace("_", "-"), "--" + spelling[2:].replace("-", "_")):
                if twin not in names:
                    names.append(twin)
                    _ALIASES.add(twin)
    return parser.add_argument(*names, **options)






def register(subparsers) -> None:
    """Add the ``sweep`` subcommand to the ``chainrule`` command's ``subparsers``."""
    parser = subparsers.add_parser(
        "sweep", help="run a hyperparameter sweep (Optuna) over chainrule train settings",
        description=_DESCRIPTION, formatter_class=_HelpFormatter, allow_abbrev=False,
        epilog="exit status: 0 when --trials trials have finished, 1 error, 130 interrupted "
               "(Ctrl-C; run the same command again to continue)",
    )

    # What to search.
    parser.add_argument("space", nargs="?", metavar="SPACE.yaml",
                        help="sweep file in the Weights & Biases sweep format")
    _add_option(parser, "--preset", choices=["course"],
                help="use a built-in space instead of a file: course is the course "
                     "assignment's space (random search, 11,664 configurations)")
    _add_option(parser, "--method", choices=["grid", "random", "bayes"],
                help="override the file's method: grid, random or bayes (TPE) "
                     "(default: the file's)")
    _add_option(parser, "--set", dest="constants", action="append", default=[],
                metavar="NAME=VALUE",
                help="fix a chainrule train setting for every trial, e.g. --set dataset=mnist "
                     "--set limit_train=5000; overrides the space (repeatable)")

    # How many trials, where they are recorded, and who runs them.
    _add_option(parser, "--trials", type=_positive_int, metavar="N",
                help="finished trials wanted across all workers and machines (default: the "
                     "file's run_cap; grid search always runs the whole grid)")
    _add_option(parser, "--workers", type=_positive_int, default=1, metavar="K",
                help="worker processes to run on this machine (default: 1)")
    _add_option(parser, "--storage", metavar="URL",
                help="SQLAlchemy URL of the study database, e.g. "
                     "postgresql+psycopg://user:password@host/database "
                     "(default: sqlite:///sweeps/<study>/study.db)")
    _add_option(parser, "--study", metavar="NAME",
                help="study name (default: the file's name, else its file name without "
                     "extension; course for the preset)")
    _add_option(parser, "--seed", type=_non_negative_int, default=0, metavar="SEED",
                help="worker i seeds its sampler with SEED + i; grid workers all use SEED, "
                     "which orders the grid (default: 0)")
    _add_option(parser, "--output-dir", metavar="DIR",
                help="the sweep directory for trial runs and results (default: sweeps/<study>)")

    # How each trial runs.
    _add_option(parser, "--no-pruning", action="store_true",
                help="run every trial to its last epoch (default: the median pruner stops "
                     "trials below the median of earlier trials at the same epoch, from "
                     "epoch 2 on, once 5 trials have finished)")
    _add_option(parser, "-wp", "--wandb_project", metavar="PROJECT",
                help="log every trial to this Weights & Biases project (default: no logging)")
    _add_option(parser, "-we", "--wandb_entity", metavar="ENTITY",
                help="W&B user or team that owns the project (default: your default entity)")
    _add_option(parser, "--threads", type=_positive_int, metavar="N",
                help="BLAS threads per trial, unless the space sets threads (default: the "
                     "cores divided by --workers)")
    _add_option(parser, "--trial-figures", action="store_true",
                help="write curves.png, confusion_matrix.png and samples.png into every "
                     "trial's run directory (default: off; they add seconds per trial)")

    # Crashes and failures.
    _add_option(parser, "--heartbeat-interval", type=_positive_int, default=60, metavar="SECONDS",
                help="seconds between a running trial's heartbeats (default: 60)")
    _add_option(parser, "--grace-period", type=_positive_int, default=120, metavar="SECONDS",
                help="a running trial without a heartbeat for this long is taken as dead and "
                     "queued again (default: 120)")
    _add_option(parser, "--max-failures", type=_positive_int, default=10, metavar="N",
                help="a worker stops after N of its trials failed, e.g. diverged "
                     "(default: 10)")
    _add_option(parser, "--quiet", action="store_true",
                help="print nothing but errors")
    parser.set_defaults(handler=_sweep_command)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_settings(args: argparse.Namespace):
    """Turn parsed ``sweep`` arguments into :class:`chainrule.sweeps.SweepSettings`.

    Raises
    ------
    ValueError
        For a missing or doubled space, an invalid sweep file, study name or --set value,
        or a trial count the method cannot run.
    """
    from chainrule import sweeps

    if (args.space is None) == (args.preset is None):
        raise ValueError(
            "give a sweep file or --preset course (exactly one), e.g. `chainrule sweep "
            "examples/sweep.yaml --trials 20`"
        )
    parser = sweeps.train_parser()
    valid_names = sweeps.sweepable_names(parser)
    if args.preset is not None:
        space = sweeps.course_space()
        default_study = "course"
    else:
        space = sweeps.load_space(args.space, valid_names=valid_names)
        default_study = space.name or Path(args.space).stem
    if args.method is not None:
        space = space.with_method(args.method)
    constants = sweeps.parse_constants(args.constants, parser)
    if constants:
        space = space.with_constants(constants)
    sweeps.check_space_against_train(space, parser)
    trials = sweeps.resolve_trial_count(space, args.trials)

    study = sweeps.check_study_name(args.study or default_study)
    if args.grace_period <= args.heartbeat_interval:
        raise ValueError(
            f"--grace-period ({args.grace_period} s) must be longer than --heartbeat-interval "
            f"({args.heartbeat_interval} s), or live trials would be taken as dead"
        )
    output_dir = Path(args.output_dir) if args.output_dir else Path("sweeps") / study
    threads = args.threads if args.threads is not None else max(1, _cores() // args.workers)
    return sweeps.SweepSettings(
        space=space,
        trials=trials,
        study_name=study,
        storage=sweeps.storage_url(args.storage, study),
        output_dir=str(output_dir.resolve()),
        seed=args.seed,
        workers=min(args.workers, trials),
        pruning=not args.no_pruning,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        max_failures=args.max_failures,
        threads=threads,
        wandb_project=args.wandb_project,
        wandb_entity=args.wandb_entity,
        trial_figures=args.trial_figures,
        quiet=args.quiet,
    )


def _sweep_command(args: argparse.Namespace) -> int:
    from chainrule import sweeps

    try:
        settings = build_settings(args)
        return sweeps.run_sweep(settings)
    except (sweeps.SweepError, TypeError) as error:
        print(f"chainrule sweep: error: {error}", file=sys.stderr)
        return 1
