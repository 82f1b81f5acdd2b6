"""Sweeps: the W&B sweep format, the course preset, exact trial counts, workers and crashes.

The end-to-end tests run ``chainrule sweep`` in a subprocess on a thousand Fashion-MNIST
images for two epochs, and read the Optuna study back from its SQLite file.
"""

import csv
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import require

from chainrule import sweeps

TINY_SWEEP = """\
method: random
metric: {name: val_accuracy, goal: maximize}
program: train.py
parameters:
  learning_rate: {values: [0.001, 0.003, 0.01]}
  num_layers: {values: [1, 2]}
  hidden_size: {values: [16, 32]}
  activation: {values: [tanh, ReLU]}
  batch_size: {value: 64}
  epochs: {value: 2}
  limit_train: {value: 1000}
  limit_test: {value: 100}
  threads: {value: 1}
"""


def sweep_command(*arguments):
    return [sys.executable, "-m", "chainrule.cli", "sweep", *map(str, arguments)]


def child_environment():
    environment = dict(os.environ)
    environment["OMP_NUM_THREADS"] = "1"
    environment.pop("CHAINRULE_DEBUG", None)
    return environment


def run_sweep_command(tmp_path, *arguments, timeout=180):
    return subprocess.run(
        sweep_command(*arguments), cwd=tmp_path, env=child_environment(),
        capture_output=True, text=True, timeout=timeout,
    )


def load_study(path, name):
    optuna = require("optuna")
    return optuna.load_study(study_name=name, storage=f"sqlite:///{path}")


def finished(study):
    return [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]


def assert_not_blank(path):
    pyplot = require("matplotlib.pyplot")
    numpy = require("numpy")
    image = pyplot.imread(path)
    pixels = image.reshape(-1, image.shape[-1])
    _, counts = numpy.unique(pixels, axis=0, return_counts=True)
    # Everything but the most common (background) colour: axes, labels, points.
    drawn = 1 - counts.max() / pixels.shape[0]
    assert image.shape[0] > 100
    assert image.shape[1] > 100
    assert drawn > 0.01


# ------------------------------------------------------------------ the sweep format


def test_parse_space_values_and_constant():
    space = sweeps.parse_space({
        "method": "random",
        "parameters": {"activation": {"values": ["tanh", "ReLU"]}, "epochs": {"value": 5}},
    })
    first, second = space.parameters
    assert (first.name, first.distribution, first.values) == ("activation", "categorical", ("tanh", "ReLU"))
    assert (second.name, second.distribution, second.values) == ("epochs", "constant", (5,))
    assert space.swept_names == ["activation"]


def test_parse_space_distributions():
    space = sweeps.parse_space({
        "method": "bayes",
        "parameters": {
            "num_layers": {"min": 1, "max": 4},
            "momentum": {"min": 0.5, "max": 0.99},
            "learning_rate": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
            "weight_decay": {"distribution": "q_uniform", "min": 0, "max": 0.5, "q": 0.1},
        },
    })
    kinds = {p.name: p.distribution for p in space.parameters}
    assert kinds == {
        "num_layers": "int_uniform",
        "momentum": "uniform",
        "learning_rate": "log_uniform_values",
        "weight_decay": "q_uniform",
    }
    assert space.parameters[3].q == 0.1


def test_parse_space_yaml_exponent_without_dot(tmp_path):
    # YAML 1.1 reads 1e-4 (no dot) as the string "1e-4"; a course file writes it so.
    path = tmp_path / "space.yaml"
    path.write_text(
        "method: random\nparameters:\n"
        "  learning_rate: {distribution: log_uniform_values, min: 1e-4, max: 1e-2}\n"
        "  weight_decay: {values: [0, 5e-4]}\n"
    )
    space = sweeps.load_space(path)
    learning_rate, weight_decay = space.parameters
    assert learning_rate.low == 0.0001
    assert learning_rate.high == 0.01
    assert weight_decay.values == (0, 0.0005)


def test_unknown_distribution_lists_valid():
    with pytest.raises(ValueError) as error:
        sweeps.parse_space({"method": "random", "parameters": {
            "learning_rate": {"distribution": "log_uniform", "min": -9, "max": -2}}})
    message = str(error.value)
    assert "'log_uniform'" in message
    for name in ("uniform", "int_uniform", "log_uniform_values", "q_uniform"):
        assert name in message


def test_unknown_parameter_lists_train_options():
    parser = sweeps.train_parser()
    with pytest.raises(ValueError) as error:
        sweeps.parse_space(
            {"method": "random", "parameters": {"lr_rate": {"values": [0.1]}}},
            valid_names=sweeps.sweepable_names(parser),
        )
    message = str(error.value)
    assert "'lr_rate'" in message
    assert "learning_rate" in message
    assert "num_layers" in message


def test_unknown_method_lists_valid():
    with pytest.raises(ValueError, match="grid, random, bayes"):
        sweeps.parse_space({"method": "hyperband", "parameters": {"epochs": {"value": 1}}})


def test_unused_keys_reported_and_ignored():
    space = sweeps.parse_space({
        "program": "train.py",
        "command": ["${env}", "python", "${program}"],
        "early_terminate": {"type": "hyperband", "min_iter": 3},
        "method": "grid",
        "parameters": {"epochs": {"values": [1, 2]}},
    })
    reported = " ".join(space.ignored)
    assert "'program'" in reported
    assert "'command'" in reported
    assert "'early_terminate'" in reported
    assert space.grid() == {"epochs": [1, 2]}


def test_unknown_top_level_key_rejected():
    with pytest.raises(ValueError, match="'paramaters'"):
        sweeps.parse_space({"method": "random", "paramaters": {}})


def test_metric_must_be_history_column():
    with pytest.raises(ValueError) as error:
        sweeps.parse_space({"method": "random", "metric": {"name": "accuracy"},
                            "parameters": {"epochs": {"value": 1}}})
    assert "val_accuracy" in str(error.value)
    assert "train_loss" in str(error.value)


def test_metric_goal_defaults():
    loss = sweeps.parse_space({"method": "random", "metric": {"name": "val_loss"},
                               "parameters": {"epochs": {"value": 1}}})
    accuracy = sweeps.parse_space({"method": "random", "parameters": {"epochs": {"value": 1}}})
    assert loss.goal == "minimize"
    assert (accuracy.metric, accuracy.goal) == ("val_accuracy", "maximize")


@pytest.mark.parametrize("entry, fragment", [
    ({"distribution": "log_uniform_values", "min": 0, "max": 1}, "min > 0"),
    ({"min": 5, "max": 1}, "smaller than max"),
    ({"values": [16, 16]}, "twice"),
    ({"values": []}, "non-empty"),
    ({"distribution": "int_uniform", "min": 1.5, "max": 4}, "integer bounds"),
    ({"min": 1}, "both `min` and `max`"),
    ({"value": 1, "values": [1, 2]}, "only `value`"),
    ({"vals": [1]}, "'vals'"),
])
def test_invalid_parameter_entry(entry, fragment):
    with pytest.raises(ValueError) as error:
        sweeps.parse_space({"method": "random", "parameters": {"batch_size": entry}})
    assert fragment in str(error.value)


def test_value_of_wrong_type():
    with pytest.raises(TypeError, match="batch_size"):
        sweeps.parse_space({"method": "random", "parameters": {"batch_size": {"values": [{"a": 1}]}}})


def test_q_uniform_grid_values():
    parameter = sweeps.parse_space({"method": "grid", "parameters": {
        "weight_decay": {"distribution": "q_uniform", "min": 0, "max": 0.5, "q": 0.1}}}).parameters[0]
    assert parameter.grid_values() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def test_grid_of_continuous_range_rejected():
    space = sweeps.parse_space({"method": "grid", "parameters": {"momentum": {"min": 0.5, "max": 0.9}}})
    with pytest.raises(ValueError, match="continuous"):
        space.grid()


# ------------------------------------------------------------------ chainrule train's options


def test_values_checked_by_train_parser():
    parser = sweeps.train_parser()
    space = sweeps.parse_space({"method": "random", "parameters": {"activation": {"values": ["tanh", "swish"]}}})
    with pytest.raises(ValueError) as error:
        sweeps.check_space_against_train(space, parser)
    assert "'swish'" in str(error.value)
    assert "activation" in str(error.value)


def test_float_range_for_integer_option_rejected():
    parser = sweeps.train_parser()
    space = sweeps.parse_space({"method": "random", "parameters": {
        "num_layers": {"distribution": "uniform", "min": 1, "max": 4}}})
    with pytest.raises(ValueError, match="int_uniform"):
        sweeps.check_space_against_train(space, parser)


def test_train_argv_parses_back():
    parser = sweeps.train_parser()
    values = {"learning_rate": 0.0005, "hidden_sizes": [64, 32], "activation": "ReLU",
              "weight_init": "Xavier", "epochs": 3}
    arguments = parser.parse_args(sweeps.train_argv(parser, values))
    assert arguments.learning_rate == 0.0005
    assert arguments.hidden_sizes == [64, 32]
    assert arguments.activation == "relu"
    assert arguments.weight_init == "xavier"
    assert arguments.epochs == 3


def test_set_constants_parse():
    parser = sweeps.train_parser()
    constants = sweeps.parse_constants(["dataset=mnist", "limit-train=500", "hidden_sizes=[64, 32]"], parser)
    assert constants == {"dataset": "mnist", "limit_train": 500, "hidden_sizes": (64, 32)}


def test_set_unknown_option_rejected():
    with pytest.raises(ValueError) as error:
        sweeps.parse_constants(["data_set=mnist"], sweeps.train_parser())
    assert "--set data_set" in str(error.value)
    assert "dataset" in str(error.value)


def test_set_without_equals_rejected():
    with pytest.raises(ValueError, match="NAME=VALUE"):
        sweeps.parse_constants(["dataset"], sweeps.train_parser())


def test_run_name_reads_as_configuration():
    space = sweeps.parse_space({"method": "random", "parameters": {
        "num_layers": {"values": [3, 4]},
        "hidden_size": {"value": 64},
        "batch_size": {"values": [16, 32]},
        "activation": {"values": ["tanh", "ReLU"]},
    }})
    values = {"num_layers": 3, "hidden_size": 64, "batch_size": 16, "activation": "tanh"}
    assert sweeps.run_name(space, values) == "hl_3_bs_16_ac_tanh"


def test_run_name_formats_floats_and_lists():
    space = sweeps.parse_space({"method": "random", "parameters": {
        "learning_rate": {"values": [0.0001, 0.001]},
        "hidden_sizes": {"values": [[128, 64], [64]]},
    }})
    assert sweeps.run_name(space, {"learning_rate": 0.0001, "hidden_sizes": [128, 64]}) == "lr_0.0001_hs_128-64"


def test_suggest_returns_decoded_values():
    optuna = require("optuna")
    space = sweeps.parse_space({"method": "random", "parameters": {
        "hidden_sizes": {"values": [[128, 64], [64]]},
        "weight_decay": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1},
        "epochs": {"value": 2},
    }})
    trial = optuna.trial.FixedTrial({"hidden_sizes": "[128 64]", "weight_decay": 0.30000000000000004})
    assert space.suggest(trial) == {"hidden_sizes": [128, 64], "weight_decay": 0.3, "epochs": 2}


# ------------------------------------------------------------------ the course preset


def test_course_preset_size():
    # epochs 2 x hidden layers 3 x sizes 3 x weight decays 3 x learning rates 2 x
    # optimizers 6 x batch sizes 3 x initialisations 2 x activations 3 = 11,664.
    space = sweeps.course_space()
    assert space.method == "random"
    assert space.grid_size() == 11664


def test_course_preset_accepted_by_train():
    space = sweeps.course_space()
    assert sweeps.check_space_against_train(space, sweeps.train_parser()) is None


def test_course_grid_refused_with_count():
    with pytest.raises(ValueError, match="11,664"):
        sweeps.resolve_trial_count(sweeps.course_space().with_method("grid"), None)


def test_course_grid_refused_by_command(tmp_path):
    result = run_sweep_command(tmp_path, "--preset", "course", "--method", "grid", timeout=60)
    assert result.returncode == 1
    assert "11,664" in result.stderr


def test_trial_count_rules():
    grid = sweeps.parse_space({"method": "grid", "parameters": {"epochs": {"values": [1, 2, 3]}}})
    capped = sweeps.parse_space({"method": "random", "run_cap": 7, "parameters": {"epochs": {"values": [1, 2]}}})
    uncapped = sweeps.parse_space({"method": "bayes", "parameters": {"epochs": {"values": [1, 2]}}})
    assert sweeps.resolve_trial_count(grid, None) == 3
    assert sweeps.resolve_trial_count(capped, None) == 7
    assert sweeps.resolve_trial_count(capped, 4) == 4
    assert sweeps.resolve_trial_count(grid, 3) == 3
    with pytest.raises(ValueError, match="runs all 3 points"):
        sweeps.resolve_trial_count(grid, 2)
    with pytest.raises(ValueError, match="--trials"):
        sweeps.resolve_trial_count(uncapped, None)


def test_unknown_parameter_by_command(tmp_path):
    (tmp_path / "bad.yaml").write_text("method: random\nparameters:\n  lr: {values: [0.1]}\n")
    result = run_sweep_command(tmp_path, "bad.yaml", "--trials", "1", timeout=60)
    assert result.returncode == 1
    assert "unknown parameter 'lr'" in result.stderr
    assert "learning_rate" in result.stderr


def test_cli_module_imports_light():
    code = "import sys, chainrule.cli_sweep; print(sorted({'optuna', 'yaml', 'chainrule.sweeps'} & set(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert output.stdout.strip() == "[]"


# ------------------------------------------------------------------ studies and claims


def test_storage_url_default_sqlite(tmp_path):
    url = sweeps.storage_url(None, "demo", base=tmp_path)
    assert url == f"sqlite:///{tmp_path.resolve() / 'sweeps' / 'demo' / 'study.db'}"
    assert (tmp_path / "sweeps" / "demo").is_dir()


def test_storage_url_postgres_scheme(monkeypatch):
    import importlib.util

    # As on a machine with psycopg 3 and without psycopg2.
    installed = {"psycopg2": None, "psycopg": object()}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: installed.get(name))
    for url in ("postgres://u:p@db/sweeps", "postgresql://u:p@db/sweeps"):
        assert sweeps.storage_url(url, "demo") == "postgresql+psycopg://u:p@db/sweeps"
    assert sweeps.storage_url("postgresql+psycopg://u@db/s", "demo") == "postgresql+psycopg://u@db/s"


@pytest.mark.parametrize("name", ["my sweep", "../up", "", ".hidden"])
def test_invalid_study_name_rejected(name):
    with pytest.raises(ValueError, match="study name"):
        sweeps.check_study_name(name)


def test_study_with_other_space_refused(tmp_path):
    require("optuna")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = sweeps.open_storage(url, heartbeat_interval=60, grace_period=120)
    first = sweeps.parse_space({"method": "random", "parameters": {"epochs": {"values": [1, 2]}}})
    second = sweeps.parse_space({"method": "random", "parameters": {"epochs": {"values": [1, 3]}}})
    sweeps.create_study(storage, "shared", first)
    with pytest.raises(sweeps.SweepError, match="another sweep definition"):
        sweeps.create_study(storage, "shared", second)


def claim_fixture(budget, method="random"):
    optuna = require("optuna")
    space = sweeps.parse_space({"method": method, "parameters": {"epochs": {"values": [1, 2]}}})
    settings = sweeps.SweepSettings(space=space, trials=budget, study_name="claims",
                                    storage="memory", output_dir="unused")
    study = optuna.create_study(direction="maximize")
    objective = sweeps._Objective(settings, study, 0, parser=None)
    return optuna, study, objective


def new_running_trial(optuna, study):
    # A fresh RUNNING trial, as study.ask() creates when no trial is waiting.
    trial_id = study._storage.create_new_trial(study._study_id)
    return optuna.trial.Trial(study, trial_id)


def test_claim_beyond_budget_released():
    optuna, study, objective = claim_fixture(budget=2)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.5))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, value=0.1))
    trial = new_running_trial(optuna, study)
    with pytest.raises(sweeps._ClaimReleased):
        objective._claim(trial)
    assert study.trials[trial.number].user_attrs["released"] is True


def test_claim_counts_waiting_trials():
    # A queued retry holds its place: with one finished and one waiting trial, a third
    # claim in a budget of two is released.
    optuna, study, objective = claim_fixture(budget=2)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.5))
    study.enqueue_trial({"epochs": 1})
    trial = new_running_trial(optuna, study)
    with pytest.raises(sweeps._ClaimReleased):
        objective._claim(trial)


def test_claim_ignores_failed_and_later_trials():
    optuna, study, objective = claim_fixture(budget=2)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.5))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    mine = new_running_trial(optuna, study)
    new_running_trial(optuna, study)  # created after mine, so it must yield, not mine
    frozen = objective._claim(mine)
    assert frozen.number == mine.number


def test_grid_claim_counts_failed_points():
    # Grid search tries each point once, so a point whose training failed keeps its place.
    optuna, study, objective = claim_fixture(budget=2, method="grid")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.5))
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs={"error": "training diverged"}))
    trial = new_running_trial(optuna, study)
    with pytest.raises(sweeps._ClaimReleased):
        objective._claim(trial)


def test_interrupted_trial_queued_again():
    optuna = require("optuna")
    study = optuna.create_study(direction="maximize")
    distribution = optuna.distributions.CategoricalDistribution([1, 2])
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, params={"epochs": 2}, distributions={"epochs": distribution}))
    sweeps._queue_interrupted_trial(study, 0)
    copies = [t for t in study.trials if t.state.name == "WAITING"]
    assert [t.params for t in copies] == [{"epochs": 2}]


def test_failed_training_not_queued_again():
    optuna = require("optuna")
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL, user_attrs={"error": "training diverged"}))
    sweeps._queue_interrupted_trial(study, 0)
    assert [t.state.name for t in study.trials] == ["FAIL"]


# ------------------------------------------------------------------ end to end


def test_two_workers_sqlite_exact_count(tmp_path):
    require("optuna")
    (tmp_path / "tiny.yaml").write_text(TINY_SWEEP)
    result = run_sweep_command(tmp_path, "tiny.yaml", "--trials", 6, "--workers", 2, "--seed", 1)
    assert result.returncode == 0, result.stderr
    assert "'program' is ignored" in result.stdout

    sweep_dir = tmp_path / "sweeps" / "tiny"
    study = load_study(sweep_dir / "study.db", "tiny")
    done = finished(study)
    assert len(done) == 6
    assert len({t.number for t in done}) == 6
    assert len({t.user_attrs["run_dir"] for t in done}) == 6
    for trial in done:
        assert (sweep_dir / "runs" / os.path.basename(trial.user_attrs["run_dir"]) / "history.csv").is_file()

    # trials.csv lists each finished trial once.
    with open(sweep_dir / "trials.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["state"] in ("COMPLETE", "PRUNED")]
    assert sorted(int(row["number"]) for row in rows) == sorted(t.number for t in done)

    # The best trial is the maximum over complete trials.
    complete = [t for t in done if t.state.name == "COMPLETE"]
    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["value"] == max(t.value for t in complete)
    best_trial = next(t for t in complete if t.number == best["number"])
    command = (sweep_dir / "best_command.txt").read_text().strip()
    assert command.startswith("chainrule train ")
    assert f"--learning_rate {best_trial.params['learning_rate']!r}" in command

    # Two worker processes whose trials overlap in time.
    processes = {t.user_attrs["pid"] for t in done}
    assert len(processes) == 2
    overlapping = [
        (a.number, b.number) for a in done for b in done
        if a.user_attrs["pid"] != b.user_attrs["pid"]
        and a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
    ]
    assert overlapping

    for figure in ("optimization_history", "parallel_coordinate", "param_importances"):
        assert_not_blank(sweep_dir / f"{figure}.png")

    # Run names read as the swept values, and each run directory contains the trial's
    # chainrule train configuration.
    for trial in done:
        p = trial.params
        expected = f"lr_{p['learning_rate']:g}_hl_{p['num_layers']}_hs_{p['hidden_size']}_ac_{p['activation'].lower()}"
        assert trial.user_attrs["run_name"] == expected
        run_dir = tmp_path / "sweeps" / "tiny" / "runs" / os.path.basename(trial.user_attrs["run_dir"])
        config = json.loads((run_dir / "config.json").read_text())
        assert config["learning_rate"] == p["learning_rate"]
        assert config["hidden_sizes"] == [p["hidden_size"]] * p["num_layers"]


def training_and_complete(database, study_name):
    """Count a study's trials in the middle of training (an epoch reported) and complete ones.

    Reads Optuna's tables directly, as a reader independent of the sweep code.
    """
    study = "(SELECT study_id FROM studies WHERE study_name = ?)"
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            training = connection.execute(
                "SELECT COUNT(DISTINCT t.trial_id) FROM trials t JOIN trial_intermediate_values v "
                f"ON v.trial_id = t.trial_id WHERE t.state = 'RUNNING' AND t.study_id = {study}",
                (study_name,),
            ).fetchone()[0]
            complete = connection.execute(
                f"SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE' AND study_id = {study}",
                (study_name,),
            ).fetchone()[0]
    except sqlite3.OperationalError:  # the tables do not exist yet
        return 0, 0
    return training, complete


def test_killed_worker_loses_nothing(tmp_path):
    optuna = require("optuna")
    (tmp_path / "slow.yaml").write_text(
        TINY_SWEEP.replace("limit_train: {value: 1000}", "limit_train: {value: 3000}")
        .replace("epochs: {value: 2}", "epochs: {value: 3}")
    )
    arguments = ["slow.yaml", "--trials", 4, "--no-pruning", "--heartbeat-interval", 1, "--grace-period", 3]
    database = tmp_path / "sweeps" / "slow" / "study.db"
    process = subprocess.Popen(sweep_command(*arguments), cwd=tmp_path, env=child_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        # Wait for a trial in the middle of training, after one has finished. SIGSTOP holds
        # the sweep during each read, so the trial cannot finish before the kill.
        while True:
            assert time.monotonic() < deadline, "no trial was seen in the middle of training"
            assert process.poll() is None, "the sweep ended before a worker could be killed"
            process.send_signal(signal.SIGSTOP)
            training, complete = training_and_complete(database, "slow")
            if training == 1 and complete >= 1:
                break
            process.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)

    study = optuna.load_study(study_name="slow", storage=f"sqlite:///{database}")
    before = {t.number: t.value for t in study.get_trials() if t.state.name == "COMPLETE"}
    killed = [t.number for t in study.get_trials() if t.state.name == "RUNNING"]
    assert len(killed) == 1
    assert len(before) < 4

    result = run_sweep_command(tmp_path, *arguments)
    assert result.returncode == 0, result.stderr

    study = optuna.load_study(study_name="slow", storage=f"sqlite:///{database}")
    trials = {t.number: t for t in study.get_trials()}
    for number, value in before.items():
        assert trials[number].state.name == "COMPLETE"
        assert trials[number].value == value
    assert len(finished(study)) == 4
    assert trials[killed[0]].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed[0]]
    assert [t.state.name for t in retries] == ["COMPLETE"]
    assert retries[0].params == trials[killed[0]].params
    assert not math.isnan(retries[0].value)


def test_wandb_logs_each_trial(tmp_path):
    require("optuna")
    require("wandb")
    (tmp_path / "tiny.yaml").write_text(TINY_SWEEP)
    environment = dict(child_environment(), WANDB_MODE="offline", WANDB_DIR=str(tmp_path),
                       WANDB_SILENT="true")
    result = subprocess.run(
        sweep_command("tiny.yaml", "--trials", 2, "--no-pruning", "--wandb_project", "sweep-test"),
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr

    study = load_study(tmp_path / "sweeps" / "tiny" / "study.db", "tiny")
    names = {t.user_attrs["run_name"] for t in finished(study)}
    runs = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 2
    # The offline run file stores the run's display name as plain bytes.
    logged = {name for name in names for run in runs if name.encode() in run.read_bytes()}
    assert logged == names


def test_run_name_large_exponent():
    space = sweeps.parse_space({"method": "grid", "parameters": {"learning_rate": {"values": [0.003, 1e30]}}})
    assert sweeps.run_name(space, {"learning_rate": 1e30}) == "lr_1e30"


DIVERGING_SWEEP = """\
method: {method}
parameters:
  learning_rate: {{values: {rates}}}
  hidden_size: {{value: 16}}
  num_layers: {{value: 1}}
  epochs: {{value: 2}}
  limit_train: {{value: 500}}
  limit_test: {{value: 100}}
  threads: {{value: 1}}
"""


def run_in_process(tmp_path, monkeypatch, *arguments):
    from chainrule.cli import main

    monkeypatch.chdir(tmp_path)
    return main(["sweep", *map(str, arguments)])


def test_grid_failed_point_not_replaced(tmp_path, monkeypatch, capsys):
    # A learning rate of 1e30 overflows the loss in the first epoch: that grid point
    # fails, is recorded with its error, and no other trial takes its place.
    require("optuna")
    (tmp_path / "grid.yaml").write_text(DIVERGING_SWEEP.format(method="grid", rates="[0.003, 1.0e+30]"))
    code = run_in_process(tmp_path, monkeypatch, "grid.yaml", "--quiet")
    assert code == 1
    assert "1 grid point(s) failed" in capsys.readouterr().err

    study = load_study(tmp_path / "sweeps" / "grid" / "study.db", "grid")
    states = {t.params["learning_rate"]: t.state.name for t in study.get_trials()}
    assert states == {0.003: "COMPLETE", 1e30: "FAIL"}
    failed = next(t for t in study.get_trials() if t.state.name == "FAIL")
    assert "diverged" in failed.user_attrs["error"]


def test_random_failures_replaced_until_limit(tmp_path, monkeypatch, capsys):
    require("optuna")
    (tmp_path / "diverge.yaml").write_text(DIVERGING_SWEEP.format(method="random", rates="[1.0e+30]"))
    code = run_in_process(tmp_path, monkeypatch, "diverge.yaml", "--trials", 2, "--max-failures", 3, "--quiet")
    assert code == 1
    assert "stopping after 3 failed trials" in capsys.readouterr().err

    study = load_study(tmp_path / "sweeps" / "diverge" / "study.db", "diverge")
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "FAIL", "FAIL"]
    with open(tmp_path / "sweeps" / "diverge" / "trials.csv", newline="") as file:
        errors = [row["error"] for row in csv.DictReader(file)]
    assert len(errors) == 3
    assert all("learning rate 1e+30" in error for error in errors)
