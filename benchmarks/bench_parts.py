"""Time the pieces of a training step that docs/benchmarks.md explains.

Each line prints the median of many repeats, in milliseconds or GFLOP/s:

- the finiteness check over the 60,000 Fashion-MNIST training images, as a float32 and
  as a float64 sum;
- gathering a batch of rows with ``take`` in its default mode and with ``mode="clip"``;
- a bias gradient as a sum over rows and as a product with a column of ones;
- an Adam step over the 784-1024-1024-10 network's parameters on one and two threads,
  right after a two-thread matrix product and under single-threaded BLAS, and over the
  784-128-128-128-10 network's on one thread;
- each kind of element-wise pass that the Adam step makes, over that small network's
  parameters on one thread;
- PyTorch's ``torch.optim.Adam`` step over the same 784-1024-1024-10 parameters on two
  threads, where PyTorch is installed;
- the matrix products of one training step of that network, per batch size and BLAS
  thread count;
- a ``Trainer`` epoch with batches split across two threads and with two-thread BLAS
  instead, for the cases that set ``PARALLEL_MIN_WORK`` and ``MIN_ROWS_PER_BLOCK`` in
  ``chainrule.training``.

Run it from the repository root on an idle machine: ``python benchmarks/bench_parts.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import chainrule as cr
from chainrule import training

LARGE = [784, 1024, 1024, 10]
SMALL = [784, 128, 128, 128, 10]
DEFAULT = [784, 512, 256, 10]  # `chainrule train`'s network
# Long enough for idle OpenBLAS threads to stop spinning (about 0.1 s on this machine).
IDLE_SECONDS = 0.5


def median_seconds(function, repeats: int, before=None) -> float:
    function()
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_images() -> np.ndarray:
    images, _ = cr.datasets.load("fashion_mnist", "train")
    X = images.reshape(len(images), -1).astype(np.float32)
    X /= np.float32(255.0)
    return X


def time_finiteness_check(X) -> None:
    as_float32 = median_seconds(lambda: X.sum(), 10)
    as_float64 = median_seconds(lambda: X.sum(dtype=np.float64), 10)
    print(f"finiteness sum over {X.size:,} float32 values: float32 sum {as_float32 * 1e3:.1f} ms, "
          f"float64 sum {as_float64 * 1e3:.1f} ms")


def time_gather(X) -> None:
    rng = np.random.default_rng(0)
    order = rng.permutation(X.shape[0])
    for batch in (64, 1024):
        out = np.empty((batch, X.shape[1]), dtype=X.dtype)
        starts = range(0, X.shape[0] - batch, batch)

        def gather(mode):
            for start in starts:
                np.take(X, order[start:start + batch], axis=0, out=out, mode=mode)

        raise_mode = median_seconds(lambda: gather("raise"), 5)
        clip_mode = median_seconds(lambda: gather("clip"), 5)
        print(f"gather one epoch in batches of {batch}: mode='raise' {raise_mode * 1e3:.1f} ms, "
              f"mode='clip' {clip_mode * 1e3:.1f} ms")


def time_bias_gradient() -> None:
    rng = np.random.default_rng(1)
    for rows, width in ((64, 128), (1024, 128), (256, 1024)):
        gradient = rng.standard_normal((rows, width), dtype=np.float32)
        ones = np.ones(rows, dtype=np.float32)
        out = np.empty(width, dtype=np.float32)
        summed = median_seconds(lambda: np.sum(gradient, axis=0, out=out), 2000)
        product = median_seconds(lambda: np.matmul(ones, gradient, out=out), 2000)
        print(f"bias gradient of a {rows}x{width} G: sum over rows {summed * 1e6:.1f} us, "
              f"ones @ G {product * 1e6:.1f} us ({summed / product:.1f}x)")


def time_adam_step() -> None:
    network = cr.Network(LARGE, seed=0)
    rng = np.random.default_rng(2)
    params = network.parameters
    gradient = rng.standard_normal(params.shape, dtype=np.float32) * np.float32(1e-2)
    optimizer = cr.optimizers.get("adam")
    left = rng.random((256, 1024), dtype=np.float32)
    right = rng.random((1024, 1024), dtype=np.float32)
    product = np.empty((256, 1024), dtype=np.float32)

    def multiply():
        np.matmul(left, right, out=product)

    for blas_threads in (1, 2):
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            for threads in (1, 2):
                seconds = median_seconds(lambda: optimizer.step(params, gradient, threads=threads),
                                         200, before=multiply)
                print(f"Adam step over {params.size:,} parameters right after a "
                      f"{blas_threads}-thread product: {threads} thread(s) {seconds * 1e3:.2f} ms")

    small = cr.Network(SMALL, seed=0).parameters
    small_gradient = gradient[:small.size].copy()
    small_optimizer = cr.optimizers.get("adam")
    seconds = median_seconds(lambda: small_optimizer.step(small, small_gradient), 2000)
    print(f"Adam step over {small.size:,} parameters: 1 thread {seconds * 1e3:.2f} ms")


def time_elementwise_passes() -> None:
    """Time, on one thread, each kind of NumPy pass that an Adam step makes."""
    count = cr.Network(SMALL, seed=0).n_parameters
    rng = np.random.default_rng(4)
    left = rng.random(count, dtype=np.float32) + np.float32(0.5)
    right = rng.random(count, dtype=np.float32) + np.float32(0.5)
    out = np.empty(count, dtype=np.float32)
    passes = {
        "multiply by a scalar": lambda: np.multiply(left, 0.9, out=out),
        "multiply two arrays": lambda: np.multiply(left, right, out=out),
        "add two arrays": lambda: np.add(left, right, out=out),
        "divide two arrays": lambda: np.divide(left, right, out=out),
        "square root": lambda: np.sqrt(left, out=out),
    }
    results = []
    with threadpool_limits(limits=1, user_api="blas"):
        for name, function in passes.items():
            results.append(f"{name} {median_seconds(function, 2000) * 1e6:.1f} us")
    print(f"element-wise passes over {count:,} float32 values, 1 thread: {', '.join(results)}")


def time_torch_adam() -> None:
    try:
        import torch
    except ImportError:
        print("PyTorch Adam step: skipped, PyTorch is not installed")
        return
    torch.set_num_threads(2)
    torch.manual_seed(0)
    shapes = []
    for fan_in, fan_out in zip(LARGE[:-1], LARGE[1:]):
        shapes += [(fan_out, fan_in), (fan_out,)]
    params = [torch.nn.Parameter(torch.randn(shape) * 0.01) for shape in shapes]
    for param in params:
        param.grad = torch.randn(param.shape) * 0.01
    optimizer = torch.optim.Adam(params, lr=1e-3)
    with torch.no_grad():
        seconds = median_seconds(optimizer.step, 200)
    count = sum(param.numel() for param in params)
    print(f"PyTorch Adam step (default implementation) over {count:,} parameters, "
          f"2 threads: {seconds * 1e3:.2f} ms")


def time_products() -> None:
    rng = np.random.default_rng(3)
    for blas_threads, rows in ((1, 16), (1, 32), (1, 128), (2, 32), (2, 64), (2, 256)):
        total, flops = 0.0, 0
        with threadpool_limits(limits=blas_threads, user_api="blas"):
            for fan_in, fan_out in zip(LARGE[:-1], LARGE[1:]):
                inputs = rng.random((rows, fan_in), dtype=np.float32)
                weights = rng.random((fan_out, fan_in), dtype=np.float32)
                grad = rng.random((rows, fan_out), dtype=np.float32)
                out = np.empty((rows, fan_out), dtype=np.float32)
                weight_grad = np.empty((fan_out, fan_in), dtype=np.float32)
                input_grad = np.empty((rows, fan_in), dtype=np.float32)
                total += median_seconds(lambda: np.matmul(inputs, weights.T, out=out), 100)
                total += median_seconds(lambda: np.matmul(grad.T, inputs, out=weight_grad), 100)
                products = 2
                if fan_in != LARGE[0]:  # the first layer needs no input gradient
                    total += median_seconds(lambda: np.matmul(grad, weights, out=input_grad), 100)
                    products = 3
                flops += products * 2 * rows * fan_in * fan_out
        print(f"products of one step of {'-'.join(map(str, LARGE))} on {rows} rows, "
              f"{blas_threads} BLAS thread(s): {total * 1e3:.2f} ms, {flops / total / 1e9:.0f} GFLOP/s")


def time_regimes(X, labels) -> None:
    """Time one epoch per regime, alternating them, and print the medians of three."""
    cases = [(SMALL, 64, 60_000), (SMALL, 256, 60_000), (SMALL, 1024, 60_000),
             (DEFAULT, 128, 60_000), (LARGE, 32, 12_000), (LARGE, 64, 12_000),
             (LARGE, 256, 12_000), (LARGE, 1024, 24_000)]
    saved = training.PARALLEL_MIN_WORK, training.MIN_ROWS_PER_BLOCK
    try:
        for sizes, batch, rows in cases:
            times = {"split": [], "BLAS": []}
            for round_index in range(4):
                for regime in times:
                    # The split regime is forced with both thresholds at their minimum,
                    # the BLAS regime with a threshold no batch reaches.
                    training.PARALLEL_MIN_WORK = 1 if regime == "split" else 2**62
                    training.MIN_ROWS_PER_BLOCK = 1
                    network = cr.Network(sizes, seed=round_index)
                    trainer = cr.Trainer(network, "adam", batch_size=batch, epochs=1,
                                         seed=round_index, quiet=True, progress=False)
                    # OpenBLAS threads spin for a while after a product, and would take a
                    # core from the first batches of the next epoch.
                    time.sleep(IDLE_SECONDS)
                    started = time.perf_counter()
                    trainer.fit(X[:rows], labels[:rows])
                    if round_index > 0:  # round 0 warms up
                        times[regime].append(time.perf_counter() - started)
            split, blas = (statistics.median(times[regime]) for regime in ("split", "BLAS"))
            print(f"epoch of {'-'.join(map(str, sizes))} on {rows:,} rows at batch {batch}, "
                  f"2 threads: split {split:.3f} s, two-thread BLAS {blas:.3f} s "
                  f"(split / BLAS {split / blas:.2f})")
    finally:
        training.PARALLEL_MIN_WORK, training.MIN_ROWS_PER_BLOCK = saved


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    X = training_images()
    _, labels = cr.datasets.load("fashion_mnist", "train")
    labels = np.asarray(labels, dtype=np.int64)
    time_finiteness_check(X)
    time_gather(X)
    time_bias_gradient()
    time_adam_step()
    time_elementwise_passes()
    time_torch_adam()
    time_products()
    with threadpool_limits(limits=2, user_api="blas"):
        time_regimes(X, labels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
