"""Time one training epoch on Fashion-MNIST: chainrule against PyTorch and scikit-learn.

Every library trains the same network for one epoch over the full, shuffled
60,000-image training set, scaled to [0, 1]. The network has the same layer sizes, hidden
activation and batch size in every library, and each trains it with softmax
cross-entropy, Adam with learning rate 1e-3, no weight decay, float32 and the same
number of threads. The runs are interleaved. For each configuration the script runs one
warm-up round of every library on a tenth of the images, then ``--repeats`` timed rounds
over all of them, rotating the order of the libraries each round. It reports the median
of each library's timed epochs, and each peer's time divided by chainrule's in the same
round, as the median over the rounds.

What each library's time includes:

``trainer``    ``chainrule.Trainer(network, adam, batch_size=b, epochs=1).fit(X, y)``:
               the input checks, the shuffle and the epoch. The network is built outside
               the timed region.
``estimator``  ``chainrule.MLPClassifier(max_iter=1, ...).fit(X, y)``: scikit-learn's
               input validation, label encoding, building the network and the epoch.
``torch``      PyTorch eager: ``nn.Sequential`` of ``Linear`` and the activation, Adam,
               ``CrossEntropyLoss``, batches gathered with ``index_select`` from a
               ``randperm`` of a seeded generator (no DataLoader). The model is built
               outside the timed region.
``sklearn``    ``sklearn.neural_network.MLPClassifier(max_iter=1, solver="adam",
               alpha=0, tol=0, shuffle=True, ...).fit(X, y)`` on float32 input.

The matrix-product limit is measured in the same run, before and after the epochs. The
median time of a 4096x4096 by 4096x4096 float32 product through NumPy, on the same
number of threads, gives the peak rate. An epoch's lower bound is its matrix-product
FLOPs divided by that rate. Per layer and example, an epoch needs one forward product
and two backward products (the weight gradient and the gradient passed to the layer
below, which the first layer does not need), each of ``2 * fan_in * fan_out`` FLOPs.

Other processes distort the times, so the script reports the CPU time that they used
(from ``/proc/stat``) for the whole run and for each row of the table, and flags the run
as made under load when that or the 1-minute load average at the start exceeds 0.5.

Peak memory is the maximum resident set size of a child process that loads the data and
trains one epoch with one library only, so that each library's imports and buffers are
counted alone. The peak of a default ``chainrule train -d fashion_mnist`` run is measured
the same way.

Run ``python benchmarks/bench_epoch.py --help`` for the options, and
``python benchmarks/bench_epoch.py --quick`` for a smoke run of under a minute. The full
run takes about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

# Network shapes by name: hidden layer sizes and the hidden activation (chainrule's name).
CONFIGS = {
    "small-relu": ((128, 128, 128), "relu"),
    "small-sigmoid": ((128, 128, 128), "sigmoid"),
    "large-relu": ((1024, 1024), "relu"),
}
BATCH_SIZES = (32, 64, 256, 1024)
LIBRARIES = ("trainer", "estimator", "torch", "sklearn")
# "chainrule" in --only stands for both of chainrule's entry points.
LIBRARY_GROUPS = {"chainrule": ("trainer", "estimator")}
N_FEATURES = 784
N_CLASSES = 10
LEARNING_RATE = 1e-3
# A 1-minute load average at the start above this, or more CPU than this used by other
# processes (in cores, averaged over the run or over one row), marks the run as under load.
LOAD_THRESHOLD = 0.5
# scikit-learn runs counted as slow: on the large network at these batch sizes one epoch
# takes tens of seconds, so --slow-repeats and --skip-slow apply to them.
SLOW_RUNS = {("sklearn", "large-relu", 32), ("sklearn", "large-relu", 64)}
DEFAULT_MEMORY_RUNS = "small-relu:1024,large-relu:256"


# ---------------------------------------------------------------------- data and FLOPs


def load_training_set(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the first ``rows`` Fashion-MNIST training images as float32 ``(rows, 784)``
    in [0, 1] and their labels as int64 ``(rows,)``."""
    import chainrule as cr

    images, labels = cr.datasets.load("fashion_mnist", "train")
    X = images[:rows].reshape(-1, N_FEATURES).astype(np.float32)
    X /= np.float32(255.0)
    return np.ascontiguousarray(X), np.ascontiguousarray(labels[:rows], dtype=np.int64)


def layer_sizes_of(config: str) -> list[int]:
    hidden, _ = CONFIGS[config]
    return [N_FEATURES, *hidden, N_CLASSES]


def epoch_flops(layer_sizes: list[int], n_examples: int) -> float:
    """Return the matrix-product FLOPs of one epoch: per layer one forward and two backward
    products of ``2 * n * fan_in * fan_out`` each, minus the first layer's input gradient."""
    total = 0
    for index, (fan_in, fan_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        products = 2 if index == 0 else 3
        total += products * 2 * n_examples * fan_in * fan_out
    return float(total)


def measure_matmul_peak(size: int, repeats: int) -> dict:
    """Time a float32 ``size``³ matrix product; return the median seconds and GFLOP/s.

    Runs under the caller's BLAS thread limit. One product is run first as a warm-up.
    """
    meter = CpuMeter()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    load = meter.read()
    return {
        "size": size,
        "seconds": times,
        "median_seconds": median,
        "gflops": 2.0 * size**3 / median / 1e9,
        "other_cores": None if load is None else load["other_cores"],
    }


def print_matmul(label: str, result: dict, args) -> None:
    other = result["other_cores"]
    other_text = "" if other is None else f"; other processes used {other:.2f} cores"
    print(f"{label:<11} {result['gflops']:.1f} GFLOP/s (median of {args.matmul_repeats} "
          f"float32 {args.matmul_size}³ products, {result['median_seconds']:.3f} s each"
          f"{other_text})", flush=True)


# ---------------------------------------------------------------------- one epoch per library
#
# Each make_* function does the set-up that is not timed and returns a callable that runs
# one epoch. The estimators build their network inside fit, so for them everything is timed.


def make_trainer_epoch(config: str, batch: int, seed: int, X, y):
    import chainrule as cr

    _, activation = CONFIGS[config]
    network = cr.Network(layer_sizes_of(config), activation=activation, seed=seed,
                         dtype="float32")
    optimizer = cr.optimizers.get("adam", learning_rate=LEARNING_RATE)
    trainer = cr.Trainer(network, optimizer, batch_size=batch, epochs=1, seed=seed,
                         quiet=True, progress=False)
    return lambda: trainer.fit(X, y)


def make_estimator_epoch(config: str, batch: int, seed: int, X, y):
    import chainrule as cr
    from sklearn.exceptions import ConvergenceWarning

    hidden, activation = CONFIGS[config]
    estimator = cr.MLPClassifier(
        hidden_layer_sizes=hidden,
        activation="logistic" if activation == "sigmoid" else activation,
        solver="adam",
        alpha=0.0,
        batch_size=batch,
        learning_rate_init=LEARNING_RATE,
        max_iter=1,
        shuffle=True,
        random_state=seed,
        tol=0.0,
        n_iter_no_change=1000,
    )

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(X, y)

    return run


def make_torch_epoch(config: str, batch: int, seed: int, X, y):
    import torch

    _, activation = CONFIGS[config]
    torch.manual_seed(seed)
    sizes = layer_sizes_of(config)
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers.append(torch.nn.ReLU() if activation == "relu" else torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_function = torch.nn.CrossEntropyLoss()
    inputs = torch.from_numpy(X)
    targets = torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    n = inputs.shape[0]

    def run():
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            batch_inputs = inputs.index_select(0, rows)
            batch_targets = targets.index_select(0, rows)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(model(batch_inputs), batch_targets)
            loss.backward()
            optimizer.step()

    return run


def make_sklearn_epoch(config: str, batch: int, seed: int, X, y):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    hidden, activation = CONFIGS[config]
    estimator = MLPClassifier(
        hidden_layer_sizes=hidden,
        activation="logistic" if activation == "sigmoid" else activation,
        solver="adam",
        alpha=0.0,
        batch_size=batch,
        learning_rate_init=LEARNING_RATE,
        max_iter=1,
        shuffle=True,
        random_state=seed,
        tol=0.0,
        n_iter_no_change=1000,
    )

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(X, y)

    return run


EPOCH_FACTORIES = {
    "trainer": make_trainer_epoch,
    "estimator": make_estimator_epoch,
    "torch": make_torch_epoch,
    "sklearn": make_sklearn_epoch,
}


# ---------------------------------------------------------------------- machine and load


class CpuMeter:
    """CPU time that other processes used while it ran, from ``/proc/stat`` (Linux only).

    Busy time of the whole machine minus this process's own CPU time (its threads and
    waited-for children) gives what everything else used, in cores on average.
    """

    def __init__(self):
        self._start = self._snapshot()

    @staticmethod
    def _snapshot():
        try:
            with open("/proc/stat") as file:
                fields = [int(value) for value in file.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        tick = os.sysconf("SC_CLK_TCK")
        own = os.times()
        return {
            "wall": time.perf_counter(),
            "busy": (user + nice + system + irq + softirq) / tick,
            "steal": steal / tick,
            "own": own.user + own.system + own.children_user + own.children_system,
        }

    def read(self) -> dict | None:
        """Return ``other_cores`` and ``steal_cores`` averaged since the meter started."""
        end = self._snapshot()
        if self._start is None or end is None:
            return None
        wall = max(end["wall"] - self._start["wall"], 1e-9)
        other = (end["busy"] - self._start["busy"]) - (end["own"] - self._start["own"])
        return {
            "other_cores": max(other, 0.0) / wall,
            "steal_cores": (end["steal"] - self._start["steal"]) / wall,
        }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_description(libraries: set[str]) -> dict:
    """Return the machine, the library versions, the BLAS libraries that threadpoolctl
    finds, and the OPENBLAS_* settings."""
    from threadpoolctl import threadpool_info

    import chainrule

    info = {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "chainrule": chainrule.__version__,
        "parallel_min_work": chainrule.training.PARALLEL_MIN_WORK,
        "min_rows_per_block": chainrule.training.MIN_ROWS_PER_BLOCK,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "threadpools": [],
    }
    if {"estimator", "sklearn"} & libraries:
        import sklearn

        info["scikit-learn"] = sklearn.__version__
    if "torch" in libraries:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        settings = {}
        for line in torch.__config__.show().splitlines():
            line = line.strip()
            if line.startswith("- CPU capability usage:"):
                settings["CPU capability"] = line.split(":", 1)[1].strip()
            if line.startswith("- Build settings:"):
                for item in line.split(":", 1)[1].split(", "):
                    key, _, value = item.partition("=")
                    if key.strip() in ("BLAS_INFO", "USE_MKLDNN", "USE_OPENMP"):
                        settings[key.strip()] = value.strip()
        info["torch_build"] = settings
    for pool in threadpool_info():
        info["threadpools"].append({
            key: pool.get(key)
            for key in ("user_api", "internal_api", "prefix", "version", "architecture",
                        "threading_layer", "num_threads", "filepath")
        })
    return info


def numpy_blas(info: dict) -> dict | None:
    """Return NumPy's own BLAS entry from ``info['threadpools']``."""
    numpy_dir = os.path.dirname(np.__file__)
    for pool in info["threadpools"]:
        path = pool.get("filepath") or ""
        if pool["user_api"] == "blas" and (
            path.startswith(numpy_dir) or os.path.basename(os.path.dirname(path)) == "numpy.libs"
        ):
            return pool
    blas = [pool for pool in info["threadpools"] if pool["user_api"] == "blas"]
    return blas[0] if blas else None


# ---------------------------------------------------------------------- peak memory


def run_child(command: list[str], *, timeout: float, cwd: str | None = None) -> dict:
    """Run ``command``; return its exit code, wall time and output."""
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   cwd=cwd, timeout=timeout, check=False)
        returncode, output = completed.returncode, completed.stdout
    except subprocess.TimeoutExpired as error:
        returncode, output = None, (error.output or b"") + b"\n(timed out)"
    return {
        "returncode": returncode,
        "seconds": time.perf_counter() - started,
        "output": output.decode("utf-8", errors="replace"),
    }


def read_last_json(text: str) -> dict:
    """Return the last line of ``text`` that parses as a JSON object, or an empty dict."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(line)
    return {}


def memory_status_mb(field: str) -> float | None:
    """Return a ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MB (Linux only)."""
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


# A child's peak is read from its own VmHWM, the high-water mark of its address space.
# The rusage that wait4 returns would be wrong: Linux carries the parent's maximum
# resident set size into a child's ru_maxrss across fork and exec. Every child started
# from this process would then report at least this process's own peak.
CLI_WITH_PEAK_RSS = """\
import sys
from chainrule.cli import main
status = main(sys.argv[1:])
with open("/proc/self/status") as file:
    peak = [int(line.split()[1]) / 1024.0 for line in file if line.startswith("VmHWM:")]
print('{"peak_rss_mb": %s}' % (peak[0] if peak else "null"), flush=True)
sys.exit(status)
"""


def measure_library_memory(library: str, config: str, batch: int, args) -> dict:
    """Peak RSS of a child that imports one library, loads the data and trains one epoch."""
    command = [
        sys.executable, os.path.abspath(__file__), "--memory-child", library, config,
        str(batch), "--rows", str(args.rows), "--seed", str(args.seed),
        "--threads", str(args.threads),
    ]
    result = run_child(command, timeout=900)
    report = {"library": library, "config": config, "batch": batch,
              "seconds": result["seconds"], "returncode": result["returncode"],
              "peak_rss_mb": None}
    report.update(read_last_json(result["output"]))
    if result["returncode"] != 0 or report["peak_rss_mb"] is None:
        report["error"] = result["output"][-2000:] or "no peak RSS reported (needs Linux)"
    return report


def memory_child(library: str, config: str, batch: int, args) -> int:
    """Child process body for :func:`measure_library_memory`; prints one JSON line."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads):
        if library == "torch":
            import torch

            torch.set_num_threads(args.threads)
        X, y = load_training_set(args.rows)
        run = EPOCH_FACTORIES[library](config, batch, args.seed, X, y)
        peak_before_epoch = memory_status_mb("VmHWM")
        run()
    print(json.dumps({"peak_rss_mb": memory_status_mb("VmHWM"),
                      "peak_rss_before_epoch_mb": peak_before_epoch}), flush=True)
    return 0


def measure_cli_memory(args) -> dict:
    """Peak RSS and wall time of ``chainrule train -d fashion_mnist`` in a temporary run directory.

    With ``--quick`` the run is shortened (one epoch on 5,000 images), so it is not the
    default run.
    """
    with tempfile.TemporaryDirectory(prefix="chainrule-bench-") as directory:
        cli_arguments = ["train", "-d", "fashion_mnist", "--output-dir",
                         os.path.join(directory, "run")]
        if args.quick:
            cli_arguments += ["-e", "1", "--limit-train", "5000", "--limit-test", "1000"]
        # The same as the chainrule console script, plus one JSON line with the peak.
        result = run_child([sys.executable, "-c", CLI_WITH_PEAK_RSS, *cli_arguments],
                           timeout=900, cwd=directory)
    report = {
        "command": "chainrule " + " ".join(
            "RUN_DIR" if argument.endswith(os.sep + "run") else argument
            for argument in cli_arguments
        ),
        "default_run": not args.quick,
        "returncode": result["returncode"],
        "seconds": result["seconds"],
        "peak_rss_mb": read_last_json(result["output"]).get("peak_rss_mb"),
    }
    if result["returncode"] != 0 or report["peak_rss_mb"] is None:
        report["error"] = result["output"][-2000:]
    return report


# ---------------------------------------------------------------------- the timed rounds


def is_slow(library: str, config: str, batch: int) -> bool:
    return (library, config, batch) in SLOW_RUNS


def time_configuration(config: str, batch: int, libraries: list[str], args, X, y,
                       failures: dict) -> dict:
    """Run the warm-up and timed rounds of every library on one configuration.

    Warm-up rounds train on the first ``--warmup-rows`` rows only: that runs every code
    path and allocates every buffer once, at a tenth of the cost of a full epoch.
    """
    meter = CpuMeter()
    rounds = args.warmup + args.repeats
    warmup_rows = min(args.warmup_rows, X.shape[0])
    times: dict[str, list[float]] = {library: [] for library in libraries}
    notes: dict[str, str] = {}
    for round_index in range(rounds):
        warm_up = round_index < args.warmup
        shift = round_index % len(libraries)
        for library in libraries[shift:] + libraries[:shift]:
            if library in failures:
                continue
            if is_slow(library, config, batch):
                if args.skip_slow:
                    notes[library] = "skipped (--skip-slow)"
                    continue
                if not warm_up and len(times[library]) >= args.slow_repeats:
                    continue
                if args.slow_repeats < args.repeats:
                    notes[library] = f"{args.slow_repeats} timed run(s) (--slow-repeats)"
            inputs, labels = (X[:warmup_rows], y[:warmup_rows]) if warm_up else (X, y)
            try:
                run = EPOCH_FACTORIES[library](config, batch, args.seed + round_index,
                                               inputs, labels)
                started = time.perf_counter()
                run()
                elapsed = time.perf_counter() - started
            except Exception as error:  # report a broken entry point and keep measuring
                failures[library] = f"{type(error).__name__}: {error}"
                print(f"  {library} failed on {config} batch {batch}: {failures[library]}; "
                      "it is left out of the rest of the run", file=sys.stderr, flush=True)
                continue
            if not warm_up:
                times[library].append(elapsed)

    medians = {library: statistics.median(values) for library, values in times.items() if values}
    load = meter.read()
    return {
        "config": config,
        "layer_sizes": layer_sizes_of(config),
        "activation": CONFIGS[config][1],
        "batch": batch,
        "seconds": times,
        "median_seconds": medians,
        "notes": notes,
        "torch_over_chainrule": paired_ratio(times, "torch", "trainer"),
        "sklearn_over_chainrule": paired_ratio(times, "sklearn", "trainer"),
        "other_cores": None if load is None else load["other_cores"],
        "steal_cores": None if load is None else load["steal_cores"],
        "load_average_after": os.getloadavg(),
    }


def paired_ratio(times: dict[str, list[float]], numerator: str, denominator: str):
    """Return the median over timed rounds of ``numerator``'s time / ``denominator``'s time.

    Both runs of a pair come from the same round, a few seconds apart. On a shared virtual
    machine whole stretches of seconds run slower for every library, so a ratio within a
    round cancels that, where a ratio of the two medians would not. A library with fewer
    timed runs (``--slow-repeats``) is paired with the first rounds only.
    """
    pairs = list(zip(times.get(numerator, []), times.get(denominator, [])))
    if not pairs:
        return None
    return statistics.median(top / bottom for top, bottom in pairs)


def add_limits(rows: list[dict], peak_flops: float, n_examples: int) -> None:
    """Add each row's matrix-product lower bound and chainrule's fraction of it."""
    for row in rows:
        row["flops"] = epoch_flops(row["layer_sizes"], n_examples)
        row["limit_seconds"] = row["flops"] / peak_flops
        trainer = row["median_seconds"].get("trainer")
        row["fraction_of_limit"] = row["limit_seconds"] / trainer if trainer else None


# ---------------------------------------------------------------------- output


def format_seconds(row: dict, library: str) -> str:
    value = row["median_seconds"].get(library)
    mark = "*" if library in row["notes"] else ""
    if value is None:
        return "-" + mark
    return f"{value:.3f}{mark}"


def format_ratio(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def row_under_load(row: dict) -> bool:
    return row["other_cores"] is not None and row["other_cores"] > LOAD_THRESHOLD


def format_table(rows: list[dict]) -> str:
    header = (
        f"{'config':<14} {'batch':>5} {'trainer s':>10} {'estim. s':>10} {'torch s':>10} "
        f"{'sklearn s':>10} {'torch/cr':>8} {'skl/cr':>8} {'limit s':>8} {'of limit':>8} "
        f"{'other':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        fraction = row["fraction_of_limit"]
        other = row["other_cores"]
        lines.append(
            f"{row['config']:<14} {row['batch']:>5} "
            f"{format_seconds(row, 'trainer'):>10} {format_seconds(row, 'estimator'):>10} "
            f"{format_seconds(row, 'torch'):>10} {format_seconds(row, 'sklearn'):>10} "
            f"{format_ratio(row['torch_over_chainrule']):>8} "
            f"{format_ratio(row['sklearn_over_chainrule']):>8} "
            f"{row['limit_seconds']:>8.3f} "
            f"{'-' if fraction is None else f'{100 * fraction:.0f} %':>8} "
            f"{'-' if other is None else f'{other:.2f}':>6}"
            f"{' !' if row_under_load(row) else ''}"
        )
    return "\n".join(lines)


TABLE_LEGEND = """\
Times are medians over the timed rounds, in seconds per epoch. cr = the chainrule trainer.
torch/cr and skl/cr: peer time / chainrule trainer time in the same round, median over
the rounds (above 1: chainrule is faster).
limit s: the epoch's matrix-product FLOPs / the float32 peak (the faster of the two
measurements).
of limit: limit s / chainrule trainer time. other: CPU cores that other processes used
while the row ran (average), with ! above the load threshold. * marks a capped or
skipped peer run (see the notes below the table)."""


def print_machine(info: dict, threads: int) -> None:
    print(f"machine     {info['cpu_model']}, {info['logical_cpus']} logical CPUs; "
          f"{info['platform']}")
    versions = [f"Python {info['python']}", f"NumPy {info['numpy']}",
                f"chainrule {info['chainrule']}"]
    if "torch" in info:
        versions.append(f"PyTorch {info['torch']}")
    if "scikit-learn" in info:
        versions.append(f"scikit-learn {info['scikit-learn']}")
    print("versions    " + ", ".join(versions))
    blas = numpy_blas(info)
    if blas is None:
        print("BLAS        threadpoolctl found no BLAS library")
    else:
        print(f"BLAS        NumPy: {blas['internal_api']} {blas['version']}, kernel "
              f"{blas['architecture']}, {blas['num_threads']} threads under the limit "
              f"({blas['prefix']})")
    if info.get("torch_build"):
        print("            PyTorch: " + ", ".join(
            f"{key} {value}" for key, value in info["torch_build"].items()
        ))
    print(f"threads     {threads} (threadpoolctl for BLAS and OpenMP, torch.set_num_threads)")
    print(f"            chainrule splits a batch into up to {threads} blocks of rows, one per "
          f"thread with one BLAS thread each, when batch size × parameters >= "
          f"{info['parallel_min_work']:,} and each block has at least "
          f"{info['min_rows_per_block']} rows; otherwise its BLAS runs {threads} threads")
    print(f"OPENBLAS_CORETYPE={info['OPENBLAS_CORETYPE'] or '(not set)'}  "
          f"OPENBLAS_L2_SIZE={info['OPENBLAS_L2_SIZE'] or '(not set)'}")
    if info["OPENBLAS_CORETYPE"]:
        print("warning     OPENBLAS_CORETYPE forces an OpenBLAS kernel, which can be slower "
              "than the one OpenBLAS picks itself; to measure without it, run with "
              "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` and check the kernel above")


def write_json(path: str, report: dict) -> None:
    """Write ``report`` to ``path`` through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".bench-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


# ---------------------------------------------------------------------- command line


def parse_list(text: str, allowed, what: str) -> list:
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if item not in allowed:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {item!r}; choose from {', '.join(map(str, allowed))}"
            )
    return items


def parse_libraries(text: str) -> list[str]:
    allowed = list(LIBRARIES) + list(LIBRARY_GROUPS)
    chosen = []
    for item in parse_list(text, allowed, "library"):
        for library in LIBRARY_GROUPS.get(item, (item,)):
            if library not in chosen:
                chosen.append(library)
    return [library for library in LIBRARIES if library in chosen]


def parse_batches(text: str) -> list[int]:
    batches = []
    for item in text.split(","):
        try:
            value = int(item)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(
                f"batch sizes must be positive integers separated by commas, got {item!r}"
            )
        batches.append(value)
    return batches


def parse_memory_runs(text: str) -> list[tuple[str, int]]:
    runs = []
    for item in text.split(","):
        if not item.strip():
            continue
        config, _, batch = item.strip().partition(":")
        if config not in CONFIGS or not batch.isdigit() or int(batch) < 1:
            raise argparse.ArgumentTypeError(
                f"memory runs are CONFIG:BATCH pairs such as small-relu:1024, with CONFIG "
                f"one of {', '.join(CONFIGS)}; got {item!r}"
            )
        runs.append((config, int(batch)))
    return runs


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time one Fashion-MNIST training epoch with chainrule, PyTorch and "
                    "scikit-learn, against the float32 matrix-product limit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--configs", type=lambda text: parse_list(text, CONFIGS, "config"),
                        default=",".join(CONFIGS),
                        help=f"networks to time, comma-separated: {', '.join(CONFIGS)}")
    parser.add_argument("--batches", type=parse_batches,
                        default=",".join(map(str, BATCH_SIZES)),
                        help="batch sizes, comma-separated")
    parser.add_argument("--only", type=parse_libraries, default=",".join(LIBRARIES),
                        help="libraries, comma-separated: trainer, estimator, torch, sklearn, "
                             "or chainrule for both of chainrule's entry points")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timed rounds per configuration; the median is reported")
    parser.add_argument("--warmup", type=non_negative_int, default=1,
                        help="untimed rounds before the timed ones")
    parser.add_argument("--warmup-rows", type=positive_int, default=6000,
                        help="images per warm-up round")
    parser.add_argument("--slow-repeats", type=positive_int, default=1,
                        help="timed runs of scikit-learn on large-relu at batch 32 and 64, "
                             "which take tens of seconds each")
    parser.add_argument("--skip-slow", action="store_true",
                        help="leave out scikit-learn on large-relu at batch 32 and 64")
    parser.add_argument("--threads", type=positive_int, default=2,
                        help="BLAS, OpenMP and PyTorch threads for every library")
    parser.add_argument("--rows", type=positive_int, default=60000,
                        help="training images per epoch (at most 60000)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the weights and the shuffling (round i uses seed + i)")
    parser.add_argument("--matmul-size", type=positive_int, default=4096,
                        help="side of the square float32 matrices timed for the peak")
    parser.add_argument("--matmul-repeats", type=positive_int, default=5,
                        help="timed matrix products; the median gives the peak")
    parser.add_argument("--memory-runs", type=parse_memory_runs,
                        default=DEFAULT_MEMORY_RUNS,
                        help="CONFIG:BATCH pairs whose peak RSS is measured per library, "
                             "each in its own child process")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the per-library peak-memory child processes")
    parser.add_argument("--no-cli", action="store_true",
                        help="skip the peak-memory run of `chainrule train -d fashion_mnist`")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small-relu at batch 256 and 1024, 10,000 images, "
                             "1 timed round, a 1024³ product, one memory run, and a one-epoch "
                             "CLI run on 5,000 images; options given explicitly are kept")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--memory-child", nargs=3, metavar=("LIBRARY", "CONFIG", "BATCH"),
                        help=argparse.SUPPRESS)
    return parser


def apply_quick(args, parser: argparse.ArgumentParser) -> None:
    """Shrink every setting that was left at its default to the --quick smoke-run size."""
    quick = {
        "configs": ["small-relu"],
        "batches": [256, 1024],
        "rows": 10000,
        "repeats": 1,
        "matmul_size": 1024,
        "matmul_repeats": 3,
        "memory_runs": [("small-relu", 256)],
    }
    defaults = vars(parser.parse_args([]))
    for name, value in quick.items():
        if getattr(args, name) == defaults[name]:
            setattr(args, name, value)


def run_benchmark(args) -> dict:
    """Run the matrix-product peak, the timed rounds and the memory runs; return the report."""
    from threadpoolctl import threadpool_limits

    load_at_start = os.getloadavg()
    run_meter = CpuMeter()
    started = time.perf_counter()
    libraries = args.only
    if "torch" in libraries:
        import torch

        torch.set_num_threads(args.threads)

    with threadpool_limits(limits=args.threads):
        info = blas_description(set(libraries))
        print_machine(info, args.threads)
        print(f"load        1/5/15-minute load average at start: {format_load(load_at_start)}")
        if args.quick:
            print("mode        --quick smoke run: the numbers are not a benchmark result")
        print(flush=True)

        matmul_before = measure_matmul_peak(args.matmul_size, args.matmul_repeats)
        print_matmul("matmul peak", matmul_before, args)

        X, y = load_training_set(args.rows)
        print(f"data        Fashion-MNIST training split, {X.shape[0]} images, float32 in "
              f"[0, 1]; {args.warmup} warm-up round(s) on {min(args.warmup_rows, X.shape[0])} "
              f"images, then the median of {args.repeats} timed epochs", flush=True)

        rows, failures = [], {}
        for config in args.configs:
            for batch in args.batches:
                row = time_configuration(config, batch, libraries, args, X, y, failures)
                rows.append(row)
                done = ", ".join(f"{library} {value:.3f} s"
                                 for library, value in row["median_seconds"].items())
                print(f"  {config} batch {batch}: {done}", file=sys.stderr, flush=True)

        # The peak is measured again after the epochs. Interference from other processes
        # only ever slows a product down, so the faster of the two medians is the limit.
        matmul_after = measure_matmul_peak(args.matmul_size, args.matmul_repeats)
        print_matmul("matmul again", matmul_after, args)
        matmul = max(matmul_before, matmul_after, key=lambda result: result["gflops"])
        add_limits(rows, matmul["gflops"] * 1e9, X.shape[0])
        del X, y

    memory = []
    if not args.no_memory:
        for config, batch in args.memory_runs:
            for library in libraries:
                if library not in failures:
                    memory.append(measure_library_memory(library, config, batch, args))
    cli = None if args.no_cli else measure_cli_memory(args)

    other_load = run_meter.read()
    other_cores = None if other_load is None else other_load["other_cores"]
    return {
        "options": {key: value for key, value in vars(args).items() if key != "memory_child"},
        "machine": info,
        "load_average_start": load_at_start,
        "load_average_end": os.getloadavg(),
        "other_processes": other_load,
        "under_load": load_at_start[0] > LOAD_THRESHOLD
        or (other_cores is not None and other_cores > LOAD_THRESHOLD)
        or any(row_under_load(row) for row in rows),
        "matmul": matmul,
        "matmul_runs": [matmul_before, matmul_after],
        "rows": rows,
        "failures": failures,
        "memory": memory,
        "cli": cli,
        "total_seconds": time.perf_counter() - started,
    }


def format_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{value:.2f}" for value in load)


def load_verdict(report: dict) -> str:
    """Return "quiet machine", or "UNDER LOAD" with each reason that exceeded the threshold."""
    reasons = []
    start = report["load_average_start"][0]
    if start > LOAD_THRESHOLD:
        reasons.append(f"the 1-minute load average was {start:.2f} at the start")
    other = report["other_processes"]
    if other is not None and other["other_cores"] > LOAD_THRESHOLD:
        reasons.append(f"other processes used {other['other_cores']:.2f} cores during the run")
    loaded_rows = sum(row_under_load(row) for row in report["rows"])
    if loaded_rows:
        reasons.append(f"other processes used more than {LOAD_THRESHOLD} cores during "
                       f"{loaded_rows} of {len(report['rows'])} rows (marked !)")
    threshold = (f"Threshold: a 1-minute load average at start, or other processes' CPU "
                 f"use over the run or during one row, above {LOAD_THRESHOLD}.")
    if not reasons:
        return f"quiet machine. {threshold}"
    return f"UNDER LOAD, so the times may be inflated: {'; '.join(reasons)}. {threshold}"


def print_report(report: dict, threads: int) -> None:
    """Print the table, the notes, the peak memory and the load verdict."""
    rows = report["rows"]
    print()
    print(format_table(rows))
    print(TABLE_LEGEND)
    for library, error in report["failures"].items():
        print(f"FAILED      {library}: {error}")
    for row in rows:
        for library, note in row["notes"].items():
            print(f"note        {row['config']} batch {row['batch']}, {library}: {note}")

    if report["memory"]:
        print()
        print("peak RSS, one child process per library (imports, data, one epoch):")
        for entry in report["memory"]:
            where = f"  {entry['config']:<14} batch {entry['batch']:>5}  {entry['library']:<9}"
            if entry.get("error"):
                print(f"{where} failed: {entry['error'].strip().splitlines()[-1]}")
                continue
            before = entry.get("peak_rss_before_epoch_mb")
            before_text = "" if before is None else f"  ({before:.0f} MB before the epoch)"
            print(f"{where} {entry['peak_rss_mb']:7.0f} MB{before_text}")

    cli = report["cli"]
    if cli is not None:
        print()
        if "error" not in cli:
            shortened = "" if cli["default_run"] else ", shortened by --quick"
            print(f"peak RSS of `{cli['command']}`: {cli['peak_rss_mb']:.0f} MB "
                  f"({cli['seconds']:.1f} s{shortened})")
        else:
            print(f"`{cli['command']}` failed with exit status {cli['returncode']}:")
            print(cli["error"].rstrip())

    print()
    print(f"load        1/5/15-minute load average at start {format_load(report['load_average_start'])}, "
          f"at end {format_load(report['load_average_end'])} (the end value includes this "
          f"benchmark's own threads, {threads} here)")
    other = report["other_processes"]
    if other is not None:
        print(f"            other processes used {other['other_cores']:.2f} cores on average "
              f"during the run; hypervisor steal {other['steal_cores']:.2f} cores")
    print(f"verdict     {load_verdict(report)}")
    print(f"total       {report['total_seconds']:.0f} s")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rows > 60000:
        parser.error(f"--rows must be at most 60000 (the training split), got {args.rows}")
    if args.memory_child:
        library, config, batch = args.memory_child
        return memory_child(library, config, int(batch), args)
    if args.quick:
        apply_quick(args, parser)

    report = run_benchmark(args)
    print_report(report, args.threads)
    if args.json:
        write_json(args.json, report)
        print(f"json        {args.json}")
    cli_failed = report["cli"] is not None and "error" in report["cli"]
    return 1 if report["failures"] or cli_failed else 0


if __name__ == "__main__":
    sys.exit(main())
