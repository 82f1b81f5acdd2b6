"""Sweeps on a shared PostgreSQL study: two commands, as on two machines, one budget.

The server is the one ``.ci/start-postgres`` starts on 127.0.0.1 (role and password
``chainrule``, database ``chainrule_test``); ``CHAINRULE_TEST_POSTGRES_URL`` points the test
at another. Without a reachable server the test is skipped, and fails under CI=true.
"""

import csv
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import require, skip_or_fail

DEFAULT_URL = "postgresql+psycopg://chainrule:chainrule@127.0.0.1:5432/chainrule_test"

# Each trial trains for most of a second, so both commands have started before the
# budget runs out and both take trials.
SWEEP = """\
method: random
metric: {name: val_accuracy, goal: maximize}
parameters:
  learning_rate: {values: [0.001, 0.003, 0.01]}
  num_layers: {values: [1, 2]}
  hidden_size: {values: [16, 32]}
  batch_size: {value: 64}
  epochs: {value: 6}
  limit_train: {value: 30000}
  limit_test: {value: 100}
  threads: {value: 1}
"""


@pytest.fixture
def postgres_url():
    require("psycopg")
    sqlalchemy = require("sqlalchemy")
    url = os.environ.get("CHAINRULE_TEST_POSTGRES_URL", DEFAULT_URL)
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as error:
        shown = engine.url.render_as_string(hide_password=True)
        skip_or_fail(f"PostgreSQL at {shown} is not reachable ({str(error).splitlines()[0]}); "
                     "start it with .ci/start-postgres")
    finally:
        engine.dispose()
    return url


@pytest.fixture
def study_name(postgres_url):
    optuna = require("optuna")
    name = f"pytest-{uuid.uuid4().hex[:12]}"
    yield name
    # The sweep study and its worker registry.
    for created in (name, name + ".workers"):
        try:
            optuna.delete_study(study_name=created, storage=postgres_url)
        except KeyError:  # not created
            pass


def read_finished_numbers(path: Path) -> list[int]:
    with open(path, newline="") as file:
        return sorted(int(row["number"]) for row in csv.DictReader(file)
                      if row["state"] in ("COMPLETE", "PRUNED"))


def test_two_machines_share_postgres_study(tmp_path, postgres_url, study_name):
    optuna = require("optuna")
    trials = 6
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    processes = []
    for machine in machines:
        machine.mkdir()
        (machine / "space.yaml").write_text(SWEEP)
        command = [sys.executable, "-m", "chainrule.cli", "sweep", "space.yaml",
                   "--storage", postgres_url, "--study", study_name, "--trials", str(trials)]
        processes.append(subprocess.Popen(command, cwd=machine, env=environment,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=240) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr

    study = optuna.load_study(study_name=study_name, storage=postgres_url)
    done = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == trials
    assert len({t.number for t in done}) == trials
    assert len({t.user_attrs["pid"] for t in done}) == 2
    # Two commands that start together still seed their samplers differently.
    assert len({t.user_attrs["worker"] for t in done}) == 2

    # Each command wrote its own results from the shared study, after all trials finished.
    for machine in machines:
        numbers = read_finished_numbers(machine / "sweeps" / study_name / "trials.csv")
        assert numbers == sorted(t.number for t in done)

    # Every trial's run directory is on the machine that ran it, and only there.
    for trial in done:
        run_dir = Path(trial.user_attrs["run_dir"])
        owners = [machine for machine in machines if run_dir.is_relative_to(machine)]
        assert len(owners) == 1
        assert (run_dir / "history.csv").is_file()


def test_wrong_password_reported(tmp_path, postgres_url):
    sqlalchemy = require("sqlalchemy")
    url = sqlalchemy.engine.make_url(postgres_url).set(password="not-the-password")
    (tmp_path / "space.yaml").write_text(SWEEP)
    result = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "sweep", "space.yaml", "--trials", "1",
         "--storage", url.render_as_string(hide_password=False)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr
    # The password never appears in the message.
    assert "not-the-password" not in result.stderr
