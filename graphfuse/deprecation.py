"""Names that moved keep working for one release: the old module's ``__getattr__`` returns the object
from its new home with a :class:`DeprecationWarning` naming it."""
from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any


def moved(old: str, new_home: ModuleType, name: str) -> Any:
    """``new_home.name``, warning that ``old`` (the deprecated dotted name) moved there."""
    new = f"{new_home.__name__}.{name}"
    warnings.warn(f"{old} moved to {new}; import it from {new_home.__name__} (the old name goes in the next "
                  f"release)", DeprecationWarning, stacklevel=3)
    return getattr(new_home, name)
