"""Work split across threads: optimizer updates in pieces, batches in blocks of rows.

The oracle for every split is the same computation on one thread. Element-wise updates
must match it bit for bit. A batch split into blocks adds its gradients in another order,
so it must match to rounding.
"""

import threading
import time
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import chainrule as cr
from chainrule import optimizers, parallel, training
from chainrule.validation import check_finite

ALL_OPTIMIZERS = ["sgd", "momentum", "nag", "rmsprop", "adam", "nadam"]


def blas_threads() -> int:
    counts = [entry["num_threads"] for entry in threadpool_info() if entry["user_api"] == "blas"]
    return min(counts)


# ---------------------------------------------------------------------- the helpers


def test_piece_bounds_by_hand():
    assert parallel.piece_bounds(10, 1) == [0, 10]
    assert parallel.piece_bounds(10, 3) == [0, 3, 6, 10]
    # 100 // 2 = 50 rounds down to 48, a multiple of 16.
    assert parallel.piece_bounds(100, 2, alignment=16) == [0, 48, 100]


def test_run_pieces_calling_thread_first():
    seen = {}

    def work(start, stop):
        seen[start] = threading.get_ident()
        time.sleep(0.01)
        return (start, stop)

    results = parallel.run_pieces(work, [0, 5, 7, 12])
    assert results == [(0, 5), (5, 7), (7, 12)]
    assert seen[0] == threading.get_ident()
    assert seen[5] != threading.get_ident()
    assert seen[7] != threading.get_ident()


def test_run_pieces_waits_before_raising():
    finished = []

    def work(start, stop):
        if start == 0:
            raise RuntimeError("first piece failed")
        time.sleep(0.05)
        finished.append(start)

    with pytest.raises(RuntimeError, match="first piece failed"):
        parallel.run_pieces(work, [0, 1, 2])
    assert finished == [1]


def test_run_pieces_raises_worker_error():
    def work(start, stop):
        if start == 1:
            raise KeyError("second piece failed")

    with pytest.raises(KeyError, match="second piece failed"):
        parallel.run_pieces(work, [0, 1, 2])


# ---------------------------------------------------------------------- optimizer updates


@pytest.mark.parametrize("name", ALL_OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_update_matches_bitwise(name, dtype):
    size = 3 * optimizers.MIN_ENTRIES_PER_THREAD + 5
    rng = np.random.default_rng(1)
    start = rng.standard_normal(size).astype(dtype)
    gradients = [rng.standard_normal(size).astype(dtype) for _ in range(3)]

    results = {}
    for threads in (1, 2, 3):
        optimizer = optimizers.get(name)
        params = start.copy()
        for gradient in gradients:
            point = optimizer.lookahead_point(params)
            optimizer.step(params, gradient if point is None else gradient * 0.5,
                           threads=threads)
        results[threads] = (params, optimizer.state_dict())

    for threads in (2, 3):
        np.testing.assert_array_equal(results[threads][0], results[1][0])
        for key, value in results[1][1].items():
            np.testing.assert_array_equal(results[threads][1][key], value)


def test_strided_params_update_in_one_piece():
    size = 2 * optimizers.MIN_ENTRIES_PER_THREAD
    rng = np.random.default_rng(2)
    buffer = rng.standard_normal(2 * size)
    gradient = rng.standard_normal(size)
    strided, copied = buffer[::2], buffer[::2].copy()
    optimizers.get("adam").step(strided, gradient, threads=2)
    optimizers.get("adam").step(copied, gradient, threads=1)
    np.testing.assert_array_equal(strided, copied)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_step_rejects_a_bad_thread_count(threads):
    params = np.zeros(3)
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        optimizers.get("sgd").step(params, np.ones(3), threads=threads)


# ---------------------------------------------------------------------- batches in blocks


@pytest.mark.parametrize("loss", ["cross_entropy", "mean_squared_error"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("threads", [2, 3, 8])
def test_block_gradients_sum_to_batch_gradient(loss, weight_decay, threads):
    network = cr.Network([12, 9, 7, 4], activation="tanh", loss=loss,
                         weight_decay=weight_decay, dtype="float64", seed=3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((29, 12))
    y = rng.integers(0, 4, 29)

    whole = np.empty_like(network.parameters)
    loss_whole, hits_whole = network.loss_and_gradients_into(X, y, whole)
    split = np.empty_like(network.parameters)
    loss_split, hits_split = network.loss_and_gradients_into(X, y, split, threads=threads)

    np.testing.assert_allclose(split, whole, rtol=1e-12, atol=1e-15)
    assert loss_split == pytest.approx(loss_whole, rel=1e-13)
    assert hits_split == hits_whole
    # The public path (new arrays, L2 penalty in the loss) is the independent reference.
    _, gradients = network.loss_and_gradients(X, y)
    np.testing.assert_allclose(split, gradients.flat, rtol=1e-12, atol=1e-15)


def test_more_threads_than_rows():
    network = cr.Network([5, 4, 3], dtype="float64", seed=5)
    X = np.random.default_rng(6).standard_normal((2, 5))
    y = np.array([0, 2])
    whole = np.empty_like(network.parameters)
    split = np.empty_like(network.parameters)
    network.loss_and_gradients_into(X, y, whole)
    network.loss_and_gradients_into(X, y, split, threads=4)
    np.testing.assert_allclose(split, whole, rtol=1e-13, atol=1e-16)


# ---------------------------------------------------------------------- the trainer


def small_problem():
    rng = np.random.default_rng(7)
    X = rng.random((300, 16))
    y = (X[:, :4].sum(axis=1) > 2).astype(int) + (X[:, 4] > 0.5)
    return X, y


def train(threads, min_work, monkeypatch, network_class=cr.Network, batch_size=64):
    monkeypatch.setattr(training, "PARALLEL_MIN_WORK", min_work)
    monkeypatch.setattr(training, "MIN_ROWS_PER_BLOCK", 32)
    network = network_class([16, 24, 12, 3], dtype="float64", weight_decay=1e-3, seed=8)
    trainer = cr.Trainer(network, "adam", batch_size=batch_size, epochs=3, seed=9, quiet=True,
                         threads=threads)
    trainer.fit(*small_problem())
    return network, trainer


def test_split_trainer_follows_single_thread(monkeypatch):
    single, _ = train(1, 1, monkeypatch)
    split, trainer = train(2, 1, monkeypatch)
    assert trainer._batch_blocks == 2
    assert trainer._update_threads == 2
    np.testing.assert_allclose(split.parameters, single.parameters, rtol=1e-9, atol=1e-12)
    assert [row["train_loss"] for row in split.history] == pytest.approx(
        [row["train_loss"] for row in single.history], rel=1e-10)
    again, _ = train(2, 1, monkeypatch)
    np.testing.assert_array_equal(again.parameters, split.parameters)


def test_trainer_splits_only_batches_with_enough_work(monkeypatch):
    network = cr.Network([16, 24, 12, 3], seed=8)
    work = 64 * network.n_parameters
    _, trainer = train(2, work, monkeypatch)
    assert trainer._batch_blocks == 2
    _, trainer = train(2, work + 1, monkeypatch)
    assert trainer._batch_blocks == 1
    assert trainer._update_threads == 1


def test_trainer_keeps_enough_rows_per_block(monkeypatch):
    rows = 32  # the MIN_ROWS_PER_BLOCK that train() sets
    _, trainer = train(3, 1, monkeypatch, batch_size=2 * rows - 1)
    assert trainer._batch_blocks == 1
    _, trainer = train(3, 1, monkeypatch, batch_size=2 * rows)
    assert trainer._batch_blocks == 2
    _, trainer = train(3, 1, monkeypatch, batch_size=3 * rows)
    assert trainer._batch_blocks == 3


def test_split_batches_use_one_blas_thread(monkeypatch):
    seen = []

    class Recording(cr.Network):
        def loss_and_gradients_into(self, X, labels, gradient, *, threads=1):
            seen.append((threads, blas_threads()))
            return super().loss_and_gradients_into(X, labels, gradient, threads=threads)

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        train(2, 1, monkeypatch, Recording)
        assert blas_threads() == before
    assert seen and all(entry == (2, 1) for entry in seen)


def test_threads_none_follows_the_blas_setting(monkeypatch):
    monkeypatch.setattr(training, "PARALLEL_MIN_WORK", 1)
    monkeypatch.setattr(training, "MIN_ROWS_PER_BLOCK", 32)
    network = cr.Network([16, 24, 12, 3], seed=8)
    trainer = cr.Trainer(network, batch_size=64, epochs=2, quiet=True)
    with threadpool_limits(limits=1, user_api="blas"):
        trainer.fit(*small_problem())
    assert (trainer._update_threads, trainer._batch_blocks) == (1, 1)
    trainer.epochs = 3
    with threadpool_limits(limits=2, user_api="blas"):
        trainer.fit(*small_problem())
    assert (trainer._update_threads, trainer._batch_blocks) == (2, 2)


# ---------------------------------------------------------------------- the input check


def test_input_check_accepts_huge_float32():
    huge = np.full((1000, 8), 3e38, dtype=np.float32)  # its float32 sum overflows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_finite(huge)
    huge[700, 3] = -np.inf
    with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\), the first at index"):
        check_finite(huge)


@pytest.mark.parametrize("sizes, batch, blocks", [
    ([784, 128, 128, 128, 10], 1024, 2),
    ([784, 128, 128, 128, 10], 256, 1),
    ([784, 512, 256, 10], 128, 1),
    ([784, 1024, 1024, 10], 64, 1),
    ([784, 1024, 1024, 10], 256, 2),
])
def test_default_thresholds_choose_regime(sizes, batch, blocks):
    trainer = cr.Trainer(cr.Network(sizes, seed=0), batch_size=batch, threads=2, quiet=True)
    trainer._choose_threads()
    assert trainer._batch_blocks == blocks
    assert trainer._update_threads == blocks
