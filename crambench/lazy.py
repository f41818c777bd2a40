"""Package attributes that import their module on first use (PEP 562).

The `cram` CLI imports every stage package to build its help; with lazy exports that costs
nothing, and torch, numpy or tokenizers load only when a command needs them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable, Callable]:
    """`__getattr__` and `__dir__` for `package`.

    exports maps a public name to the module that defines it, or to "module:attribute" where
    the module calls it something else. A resolved name is cached on the package.
    """

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = exports[name].partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*exports, *getattr(sys.modules[package], "__all__", ())})

    return __getattr__, __dir__
