"""chainrule: feedforward neural networks with backpropagation written out by hand.

``import chainrule`` imports NumPy and nothing heavier. Names that need matplotlib,
scikit-learn or the training loop are imported the first time they are used.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public name -> (module, attribute or None for the module itself).
_LAZY_NAMES = {
    "Network": ("chainrule.network", "Network"),
    "Gradients": ("chainrule.network", "Gradients"),
    "gradcheck": ("chainrule.gradient_check", "gradcheck"),
    "activations": ("chainrule.activations", None),
    "losses": ("chainrule.losses", None),
    "initializers": ("chainrule.initializers", None),
    "optimizers": ("chainrule.optimizers", None),
    "schedules": ("chainrule.schedules", None),
    "idx": ("chainrule.idx", None),
    "datasets": ("chainrule.datasets", None),
    "preprocessing": ("chainrule.preprocessing", None),
    "training": ("chainrule.training", None),
    "Trainer": ("chainrule.training", "Trainer"),
    "load_model": ("chainrule.training", "load_model"),
    "metrics": ("chainrule.metrics", None),
    "evaluate": ("chainrule.metrics", "evaluate"),
    "plots": ("chainrule.plots", None),
    "diagnostics": ("chainrule.diagnostics", None),
    "explain": ("chainrule.explanation", "explain"),
    "comparisons": ("chainrule.comparisons", None),
    "surfaces": ("chainrule.surfaces", None),
    "MLPClassifier": ("chainrule.estimator", "MLPClassifier"),
    "sweeps": ("chainrule.sweeps", None),
}

__all__ = sorted(_LAZY_NAMES) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY_NAMES[name]
    except KeyError:
        raise AttributeError(f"module 'chainrule' has no attribute {name!r}") from None
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
