"""Weights & Biases logging, in offline mode with its files in a temporary folder.

The offline run file ``run-*.wandb`` starts with a 7-byte W&B header, followed by a
LevelDB-style log of protobuf ``Record`` messages: 32 KiB blocks, each chunk behind a
7-byte header of checksum, little-endian length and chunk type. :func:`read_records`
decodes it with wandb's own protobuf classes, so the tests check exactly what
``wandb sync`` would upload.
"""

import csv
import json
import os
import struct
import subprocess
import sys

import pytest
from conftest import require

from chainrule import cli

HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                   "learning_rate", "seconds"]
BLOCK_SIZE = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path):
    """Return the protobuf records of an offline W&B run file."""
    protobuf = require("wandb.proto.wandb_internal_pb2")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending, records = 7, b"", []
    while position + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK_SIZE - position % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER:
            position += left_in_block  # the block's zero padding
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + CHUNK_HEADER])
        chunk = data[position + CHUNK_HEADER:position + CHUNK_HEADER + length]
        position += CHUNK_HEADER + length
        if kind == FULL:
            records.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            records.append(pending + chunk)
    parsed = []
    for raw in records:
        record = protobuf.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed


def item_key(item):
    return item.key or "/".join(item.nested_key)


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    require("wandb")
    root = tmp_path_factory.mktemp("wandb")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(root), "WANDB_SILENT": "true",
           "HOME": str(root)}
    env.pop("WANDB_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "chainrule.cli", "train", "-wp", "chainrule-test", "-e", "2",
         "--limit-train", "1000", "--limit-test", "300", "--hidden_sizes", "32", "--threads", "1",
         "--quiet",
         "--output-dir", str(root / "run")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    run_folders = list((root / "wandb").glob("offline-run-*"))
    assert len(run_folders) == 1
    return root / "run", run_folders[0]


def test_offline_run_files(offline_run):
    _, wandb_run = offline_run

    assert len(list(wandb_run.glob("run-*.wandb"))) == 1
    assert len(list((wandb_run / "files" / "media" / "images").glob("samples_*.png"))) == 1
    tables = list((wandb_run / "files" / "media" / "table").glob("confusion_matrix_table_*.json"))
    assert len(tables) == 1


def test_offline_run_logs_history_columns(offline_run):
    run_dir, wandb_run = offline_run
    records = read_records(next(wandb_run.glob("run-*.wandb")))
    logged = [
        {item_key(item): json.loads(item.value_json) for item in record.history.item}
        for record in records if record.WhichOneof("record_type") == "history"
    ]
    with open(run_dir / "history.csv", newline="") as file:
        history = list(csv.DictReader(file))

    assert len(logged) == 2
    for row, entry in zip(history, logged):
        for column in HISTORY_COLUMNS:
            assert entry[column] == pytest.approx(float(row[column]), rel=1e-12), column


def test_offline_run_config_and_summary(offline_run):
    run_dir, wandb_run = offline_run
    records = read_records(next(wandb_run.glob("run-*.wandb")))
    run_record = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    config = {item.key: json.loads(item.value_json) for item in run_record.config.update}
    summary = {
        item_key(item): json.loads(item.value_json)
        for record in records if record.WhichOneof("record_type") == "summary"
        for item in record.summary.update
    }
    metrics = json.loads((run_dir / "metrics.json").read_text())

    assert config["learning_rate"] == 0.001
    assert config["hidden_sizes"] == [32]
    assert config["wandb_project"] == "chainrule-test"
    assert summary["test_accuracy"] == pytest.approx(metrics["accuracy"], rel=1e-12)


def test_confusion_table_matches_metrics(offline_run):
    run_dir, wandb_run = offline_run
    tables = wandb_run / "files" / "media" / "table"
    table_path = next(tables.glob("confusion_matrix_table_*.json"))
    table = json.loads(table_path.read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    names = metrics["class_names"]

    columns = table["columns"]
    actual, predicted, count = (columns.index(name) for name in ("Actual", "Predicted", "nPredictions"))
    counts = {(row[actual], row[predicted]): row[count] for row in table["data"]}
    for true_index, true_name in enumerate(names):
        for predicted_index, predicted_name in enumerate(names):
            expected = metrics["confusion_matrix"][true_index][predicted_index]
            assert counts.get((true_name, predicted_name), 0) == expected


def test_missing_package_explains_fixes(monkeypatch):
    from chainrule import tracking

    monkeypatch.setitem(sys.modules, "wandb", None)

    with pytest.raises(tracking.TrackingError) as raised:
        tracking.WandbTracker.start(project="p", config={})

    message = str(raised.value)
    assert 'pip install "chainrule[wandb]"' in message
    assert "wandb login" in message
    assert "WANDB_MODE=offline" in message


def test_failed_login_stops_before_writing(monkeypatch, tmp_path, capsys):
    wandb = require("wandb")

    def reject_login(**kwargs):
        raise wandb.errors.UsageError("No API key configured. Use `wandb login` to log in.")

    monkeypatch.setattr(wandb, "init", reject_login)
    status = cli.main(["train", "-wp", "p", "--limit-train", "300", "--limit-test", "50",
                       "-e", "1", "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err

    assert status == 1
    assert "No API key configured" in err
    assert "WANDB_MODE=offline" in err
    assert "wandb login" in err
    assert not (tmp_path / "run").exists()
