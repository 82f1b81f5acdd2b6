"""The array namespace that all of chainrule's array code goes through.

Every module imports ``xp`` from here instead of importing NumPy directly, so that a
library with NumPy's API (CuPy, for example) could replace it in one place. Only NumPy is
supported today.
"""

import numpy as xp

__all__ = ["xp"]
