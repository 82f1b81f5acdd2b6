"""Regenerate every example figure of docs/figures.md from Fashion-MNIST.

Run from the repository root::

    python docs/make_figures.py

Each figure is made by the ``chainrule`` command that docs/figures.md shows next to it,
run in-process through ``chainrule.cli.main``, so the documented commands are the ones
tested here. The two training runs go to a temporary folder. Only the PNGs are kept, in
docs/figures/, at 80 dpi so that the folder stays well under 2 MB.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from chainrule.cli import main

FIGURES = Path(__file__).resolve().parent / "figures"
DPI = "80"
# The explained test image: a correctly classified ankle boot in the first run.
EXPLAINED_INDEX = "0"


def command(*argv: str) -> None:
    """Run one chainrule command and stop the script if it fails."""
    print("$ chainrule " + " ".join(argv), flush=True)
    started = time.perf_counter()
    status = main(list(argv))
    if status != 0:
        sys.exit(f"chainrule {argv[0]} failed with exit status {status}")
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def make_figures(work: Path) -> None:
    FIGURES.mkdir(exist_ok=True)
    relu_run = work / "relu-run"
    zero_run = work / "zero-init-run"

    # A ReLU network with diagnostics on: explain, failures and the diagnostics figure.
    command("train", "-d", "fashion_mnist", "--limit-train", "12000", "-e", "8",
            "--hidden_sizes", "128", "64", "-a", "relu", "-lr", "0.003", "--diagnostics",
            "--output-dir", str(relu_run), "--quiet")
    command("explain", str(relu_run), "--index", EXPLAINED_INDEX, "--dpi", DPI,
            "--output", str(FIGURES / f"explain-{EXPLAINED_INDEX}.png"))
    command("failures", str(relu_run), "--count", "24", "--dpi", DPI,
            "--output", str(FIGURES / "failures.png"))
    command("plot-diagnostics", str(relu_run), "--dpi", DPI,
            "--output", str(FIGURES / "diagnostics.png"))

    # Zero initialisation: the units of each hidden layer stay copies of one another.
    command("train", "-d", "fashion_mnist", "--limit-train", "5000", "-e", "5",
            "--hidden_sizes", "32", "32", "-a", "sigmoid", "-w_i", "zeros", "-o", "sgd",
            "-lr", "0.5", "--diagnostics", "--output-dir", str(zero_run), "--quiet")
    command("plot-diagnostics", str(zero_run), "--dpi", DPI,
            "--output", str(FIGURES / "diagnostics-zero-init.png"))

    # The course-report comparisons, at their default sizes.
    command("compare-losses", "--quiet", "--dpi", DPI, "--output", str(FIGURES / "compare-losses.png"))
    command("compare-optimizers", "--quiet", "--dpi", DPI,
            "--output", str(FIGURES / "compare-optimizers.png"))
    command("compare-activations", "--quiet", "--dpi", DPI,
            "--output", str(FIGURES / "compare-activations.png"))
    command("accuracy-curves", "--quiet", "--dpi", DPI,
            "--output", str(FIGURES / "accuracy-curves.png"))
    command("optimizer-paths", "--dpi", DPI, "--output", str(FIGURES / "optimizer-paths.png"))


def main_script() -> None:
    work = Path(tempfile.mkdtemp(prefix="chainrule-figures-"))
    try:
        make_figures(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = sum(path.stat().st_size for path in FIGURES.glob("*.png"))
    print(f"wrote {len(list(FIGURES.glob('*.png')))} figures to {FIGURES} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main_script()
