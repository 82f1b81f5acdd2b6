"""The trainer: history, repeatability, resume, Nesterov, early stopping, failures, models."""

import json
import os
import signal

import numpy as np
import pytest

import chainrule as cr
from chainrule import schedules
from chainrule.training import (
    HISTORY_COLUMNS,
    Trainer,
    TrainingDiverged,
    TrainingInterrupted,
    load_model,
    save_model,
)


def blobs(n=120, seed=0):
    """Three well-separated Gaussian blobs in 4 dimensions."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    centres = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    X = centres[labels] + 0.5 * rng.standard_normal((n, 4))
    return X.astype(np.float32), labels


def small_net(seed=0, **kwargs):
    return cr.Network([4, 8, 3], seed=seed, **kwargs)


def test_fit_history_columns_and_learning():
    X, y = blobs()
    net = small_net()
    adam = cr.optimizers.get("adam", learning_rate=0.02)
    history = Trainer(net, adam, batch_size=16, epochs=5, quiet=True).fit(
        X, y, validation_data=blobs(60, seed=1)
    )
    assert len(history) == 5
    assert list(history[0]) == list(HISTORY_COLUMNS)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_accuracy"] > 0.9
    assert net.history is history


def test_train_loss_is_running_mean_of_batches():
    # One batch covering the data set: the epoch's train_loss is that batch's data loss
    # before the update.
    X, y = blobs(30)
    net = small_net(weight_decay=0.1)
    expected_loss = net.loss(X, y) - net.l2_penalty()
    expected_accuracy = float(np.mean(net.predict(X) == y))
    history = Trainer(net, "sgd", batch_size=1000, epochs=1, shuffle=False, quiet=True).fit(X, y)
    assert history[0]["train_loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert history[0]["train_accuracy"] == pytest.approx(expected_accuracy)
    assert np.isnan(history[0]["val_loss"])


def test_epoch_line_format():
    X, y = blobs(40)
    lines = []
    Trainer(small_net(), epochs=2, batch_size=8, log=lines.append).fit(
        X, y, validation_data=(X, y)
    )
    assert len(lines) == 2
    parts = lines[1].split()
    assert parts[0:2] == ["epoch", "2/2"]
    assert parts[2::2] == ["train_loss", "val_loss", "val_accuracy", "seconds"]
    assert "  train_loss " in lines[1]


def test_quiet_prints_nothing(capsys):
    X, y = blobs(40)
    Trainer(small_net(), epochs=2, quiet=True).fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_same_seed_gives_identical_weights():
    X, y = blobs()
    first, second = small_net(), small_net()
    history_1 = Trainer(first, "adam", batch_size=10, epochs=3, seed=5, quiet=True).fit(X, y)
    history_2 = Trainer(second, "adam", batch_size=10, epochs=3, seed=5, quiet=True).fit(X, y)
    np.testing.assert_array_equal(first.parameters, second.parameters)
    for row_1, row_2 in zip(history_1, history_2):
        for column in HISTORY_COLUMNS:
            if column != "seconds":
                assert row_1[column] == row_2[column] or (
                    np.isnan(row_1[column]) and np.isnan(row_2[column])
                )
    other = small_net()
    Trainer(other, "adam", batch_size=10, epochs=3, seed=6, quiet=True).fit(X, y)
    assert not np.array_equal(first.parameters, other.parameters)


def test_batch_larger_than_data_is_one_batch():
    X, y = blobs(20)
    net = small_net()
    optimizer = cr.optimizers.get("sgd", learning_rate=0.1)
    Trainer(net, optimizer, batch_size=500, epochs=3, quiet=True).fit(X, y)
    assert optimizer.step_count == 3


@pytest.mark.parametrize("optimizer", ["adam", "nag", "rmsprop"])
def test_resume_equals_straight_run(tmp_path, optimizer):
    X, y = blobs()
    validation = blobs(40, seed=3)
    checkpoint = tmp_path / "checkpoint.npz"

    straight = small_net()
    straight_history = Trainer(
        straight, optimizer, batch_size=16, epochs=4, seed=2, quiet=True
    ).fit(X, y, validation_data=validation)

    first_half = small_net()
    Trainer(first_half, optimizer, batch_size=16, epochs=2, seed=2, quiet=True,
            checkpoint_path=checkpoint).fit(X, y, validation_data=validation)
    resumed = small_net(seed=99)  # different initial weights: all must come from the checkpoint
    trainer = Trainer(resumed, optimizer, batch_size=16, epochs=4, seed=123, quiet=True)
    trainer.load_checkpoint(checkpoint)
    resumed_history = trainer.fit(X, y, validation_data=validation)

    np.testing.assert_array_equal(resumed.parameters, straight.parameters)
    assert len(resumed_history) == 4
    for row_1, row_2 in zip(resumed_history, straight_history):
        for column in HISTORY_COLUMNS:
            if column != "seconds":
                assert row_1[column] == row_2[column]


def test_checkpoint_rejects_other_architecture(tmp_path):
    X, y = blobs(30)
    Trainer(small_net(), epochs=1, quiet=True, checkpoint_path=tmp_path / "c.npz").fit(X, y)
    other = Trainer(cr.Network([4, 5, 3], seed=0), epochs=2, quiet=True)
    with pytest.raises(ValueError, match=r"layer sizes \[4, 8, 3\].*\[4, 5, 3\]"):
        other.load_checkpoint(tmp_path / "c.npz")


def test_damaged_checkpoint_rejected(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable chainrule checkpoint"):
        Trainer(small_net(), epochs=1).load_checkpoint(path)


def test_nesterov_gradient_at_lookahead_and_network_holds_w():
    # Full-batch NAG for two steps, recomputed by hand from the core's gradients:
    # step 1: u_1 = η g(w_0), w_1 = w_0 − u_1 (u_0 = 0, so the look-ahead is w_0);
    # step 2: g at w_1 − β u_1, u_2 = β u_1 + η g, w_2 = w_1 − u_2.
    X, y = blobs(30)
    eta, beta = 0.5, 0.9
    reference = small_net(dtype="float64")
    w0 = reference.parameters.copy()
    g0 = reference.loss_and_gradients(X, y)[1].flat
    u1 = eta * g0
    w1 = w0 - u1
    reference.parameters[:] = w1 - beta * u1
    g1 = reference.loss_and_gradients(X, y)[1].flat
    u2 = beta * u1 + eta * g1
    w2 = w1 - u2

    net = small_net(dtype="float64")
    optimizer = cr.optimizers.get("nag", learning_rate=eta, momentum=beta)
    Trainer(net, optimizer, batch_size=1000, epochs=2, shuffle=False, quiet=True).fit(X, y)
    np.testing.assert_allclose(net.parameters, w2, rtol=1e-12, atol=1e-14)
    assert not np.allclose(net.parameters, w2 - beta * u2)


def test_early_stopping_restores_best_weights():
    # Validation labels are a permutation of the training labels, so the validation loss
    # rises once the network learns the training labels.
    X, y = blobs(90)
    y_val = np.roll(y, 1)
    net = small_net()
    best_snapshots = {}

    def remember(trainer, row):
        best_snapshots[row["epoch"]] = trainer.network.parameters.copy()

    trainer = Trainer(net, cr.optimizers.get("adam", learning_rate=0.05), batch_size=10,
                      epochs=30, patience=2, quiet=True, callbacks=[remember])
    history = trainer.fit(X, y, validation_data=(X, y_val))
    losses = [row["val_loss"] for row in history]
    assert trainer.stopped_early
    assert len(history) < 30
    assert trainer.best_epoch == int(np.argmin(losses)) + 1
    assert len(history) == trainer.best_epoch + 2
    np.testing.assert_array_equal(net.parameters, best_snapshots[trainer.best_epoch])


class JumpSchedule(schedules.Schedule):
    """A learning rate of 0.01 in the first epoch, then 1e6."""

    name = "jump"

    def _rate(self, epoch):
        return 0.01 if epoch == 0 else 1e6


def test_divergence_stops_and_keeps_checkpoint(tmp_path):
    X, y = blobs(60)
    checkpoint = tmp_path / "checkpoint.npz"
    net = small_net()
    trainer = Trainer(net, "sgd", batch_size=10, epochs=5, quiet=True,
                      schedule=JumpSchedule(0.01, 5), checkpoint_path=checkpoint)
    with pytest.raises(TrainingDiverged) as caught:
        trainer.fit(X, y)
    error = caught.value
    assert error.epoch == 2
    assert error.batch >= 1
    assert error.learning_rate == 1e6
    message = str(error)
    assert "epoch 2" in message
    assert "learning rate 1e+06" in message
    assert "too high" in message
    assert str(checkpoint) in message
    assert np.isfinite(net.parameters).all()
    assert len(trainer.history) == 1
    assert all(np.isfinite(row["train_loss"]) for row in trainer.history)

    restored = small_net(seed=5)
    Trainer(restored, "sgd", epochs=5).load_checkpoint(checkpoint)
    np.testing.assert_array_equal(restored.parameters, net.parameters)


def test_exploding_finite_loss_counts_as_divergence():
    # Adam at a learning rate of 1e3 moves every weight by about 1e3 in its first step,
    # so the second batch's cross-entropy is in the thousands: far above 100 · log 3.
    X, y = blobs(60)
    net = small_net()
    initial = net.parameters.copy()
    trainer = Trainer(net, cr.optimizers.get("adam", learning_rate=1e3), batch_size=10,
                      epochs=3, quiet=True)
    with pytest.raises(TrainingDiverged, match="exploded") as caught:
        trainer.fit(X, y)
    assert caught.value.epoch == 1
    assert caught.value.batch == 2
    np.testing.assert_array_equal(net.parameters, initial)


def test_squared_error_has_no_loss_threshold():
    trainer = Trainer(small_net(loss="mean_squared_error"), epochs=1)
    assert trainer.exploded_loss == float("inf")


def test_sigint_stops_after_current_batch(tmp_path):
    X, y = blobs(60)
    checkpoint = tmp_path / "checkpoint.npz"

    def interrupt_after_first_epoch(trainer, row):
        if row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    trainer = Trainer(small_net(), "adam", batch_size=10, epochs=5, quiet=True,
                      checkpoint_path=checkpoint, callbacks=[interrupt_after_first_epoch])
    with pytest.raises(TrainingInterrupted) as caught:
        trainer.fit(X, y)
    assert caught.value.epoch == 2
    assert caught.value.batch == 1
    assert str(checkpoint) in str(caught.value)
    resumed = Trainer(small_net(), "adam", batch_size=10, epochs=3, quiet=True)
    resumed.load_checkpoint(checkpoint)
    assert len(resumed.history) == 1
    resumed.fit(X, y)
    assert len(resumed.history) == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resume_after_interrupt_equals_straight_run(tmp_path):
    # SIGINT arrives in the middle of epoch 2; the checkpoint then records the batch
    # position, and resuming finishes the run exactly as an uninterrupted one.
    X, y = blobs(90)
    checkpoint = tmp_path / "checkpoint.npz"
    straight = small_net()
    straight_history = Trainer(straight, "adam", batch_size=10, epochs=3, seed=4,
                               quiet=True).fit(X, y)

    batches_seen = []

    class InterruptingNetwork(cr.Network):
        def loss_and_gradients_into(self, X_batch, labels, gradient):
            batches_seen.append(len(batches_seen))
            if len(batches_seen) == 13:  # the fourth batch of epoch 2 (9 batches an epoch)
                os.kill(os.getpid(), signal.SIGINT)
            return super().loss_and_gradients_into(X_batch, labels, gradient)

    interrupted = InterruptingNetwork([4, 8, 3], seed=0)
    trainer = Trainer(interrupted, "adam", batch_size=10, epochs=3, seed=4, quiet=True,
                      checkpoint_path=checkpoint)
    with pytest.raises(TrainingInterrupted, match="epoch 2, batch 4; saved a checkpoint"):
        trainer.fit(X, y)

    resumed = small_net(seed=9)
    resumed_trainer = Trainer(resumed, "adam", batch_size=10, epochs=3, seed=77, quiet=True)
    resumed_trainer.load_checkpoint(checkpoint)
    assert len(resumed_trainer.history) == 1
    resumed_history = resumed_trainer.fit(X, y)
    np.testing.assert_array_equal(resumed.parameters, straight.parameters)
    for row_1, row_2 in zip(resumed_history, straight_history):
        for column in HISTORY_COLUMNS:
            if column != "seconds":
                np.testing.assert_equal(row_1[column], row_2[column])  # NaN equals NaN


def test_gradient_clipping_bounds_step():
    X, y = blobs(30)
    net = small_net()
    before = net.parameters.copy()
    Trainer(net, cr.optimizers.get("sgd", learning_rate=1.0), batch_size=1000, epochs=1,
            max_gradient_norm=1e-3, quiet=True).fit(X, y)
    assert np.linalg.norm(net.parameters - before) <= 1e-3 * (1 + 1e-5)


def test_threads_limit_accepted():
    X, y = blobs(30)
    history = Trainer(small_net(), epochs=1, threads=1, quiet=True).fit(X, y)
    assert len(history) == 1


def test_invalid_trainer_settings():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        Trainer(small_net(), batch_size=0)
    with pytest.raises(ValueError, match="epochs must be a positive integer, got -1"):
        Trainer(small_net(), epochs=-1)
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'"):
        Trainer(small_net(), "adamw")
    with pytest.raises(ValueError, match="max_gradient_norm must be > 0"):
        Trainer(small_net(), max_gradient_norm=0)
    with pytest.raises(TypeError, match="chainrule.Network"):
        Trainer("net")


def test_model_round_trip(tmp_path):
    X, y = blobs(40)
    net = small_net()
    Trainer(net, epochs=2, quiet=True).fit(X, y)
    save_model(tmp_path, net, class_names=["a", "b", "c"], metadata={"dataset": "blobs"})
    for path in (tmp_path, tmp_path / "model.json", tmp_path / "model.npz"):
        model = load_model(path)
        np.testing.assert_array_equal(model.network.parameters, net.parameters)
        assert model.class_names == ["a", "b", "c"]
        assert model.metadata == {"dataset": "blobs"}
    with np.load(tmp_path / "model.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["W1", "W2", "b1", "b2"]
    description = json.loads((tmp_path / "model.json").read_text())
    assert description["format_version"] == 1
    assert description["network"]["layer_sizes"] == [4, 8, 3]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_damaged_or_foreign_model_rejected(tmp_path):
    save_model(tmp_path, small_net())
    (tmp_path / "model.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.npz is not a valid chainrule model file"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text('{"name": "something else"}')
    with pytest.raises(ValueError, match="not a chainrule model description"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="not found"):
        load_model(tmp_path / "missing")


def test_integer_input_warns_about_scaling():
    X, y = blobs(30)
    raw = (X * 50 + 100).astype(np.uint8)
    with pytest.warns(UserWarning, match="integer dtype uint8.*Preprocessor"):
        Trainer(small_net(), epochs=1, quiet=True).fit(raw, y)
