"""A package's public names: what its curated ``__all__`` must list."""

from __future__ import annotations

import types


def public_names(package: types.ModuleType) -> set[str]:
    """The names ``package`` binds that do not start with ``_``, its submodules left out."""
    return {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
