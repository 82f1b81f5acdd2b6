"""The package namespace: light import, and public functions not shadowed by modules."""

import subprocess
import sys


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return result.stdout.strip()


def test_import_loads_numpy_and_nothing_heavier():
    output = run_python(
        "import sys, chainrule\n"
        "heavy = ['matplotlib', 'sklearn', 'torch', 'optuna', 'tqdm', 'wandb', 'threadpoolctl']\n"
        "print(','.join(name for name in heavy if name in sys.modules) or 'none')\n"
        "chainrule.Network([2, 2]).forward([[1.0, 2.0]])\n"
        "print(','.join(name for name in heavy if name in sys.modules) or 'none')"
    )
    assert output.splitlines() == ["none", "none"]


def test_functions_not_shadowed_by_submodules():
    # Importing a submodule sets it as an attribute of the package, so a module named
    # like a public function would replace that function.
    output = run_python(
        "import chainrule as cr\n"
        "import chainrule.cli, chainrule.cli_diagnostics, chainrule.gradient_check\n"
        "import chainrule.explanation, chainrule.metrics, chainrule.training\n"
        "print(callable(cr.gradcheck), callable(cr.explain), callable(cr.evaluate))\n"
        "print(callable(cr.Trainer), callable(cr.load_model), callable(cr.Network))"
    )
    assert output.splitlines() == ["True True True", "True True True"]


def test_every_lazy_name_resolves():
    import chainrule

    for name in chainrule.__all__:
        assert getattr(chainrule, name) is not None, name
