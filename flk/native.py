"""Compiled twins of pure-Python hot modules (mypyc), used only when built from the source as it is now.

A module listed in ``COMPILED`` can have a twin ``<module>_native``: the same source, compiled with
mypyc by ``python -m tools.native build`` (``./run setup`` runs it), with one line added, ``BUILT_FROM``,
the SHA-256 of the source it was compiled from. No ``<module>_native.py`` exists in the tree, only the
compiled extension beside the module; the pure module stays the definition, the reference the tests
compare with, and the fallback wherever no compiler was at hand (ADR 0010).

:func:`twin` gives the twin when it exists and was built from the module's current source, and the
module itself otherwise, with the reason: a twin built from an older source is never used.
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

#: the modules compiled where a compiler is at hand (tools/native.py builds them)
COMPILED = ("services.continuity.service_layer.hot_visits", "flk.events.usual", "flk.events.formats")
SUFFIX = "_native"


@dataclass(frozen=True)
class Chosen:
    module: ModuleType
    compiled: bool
    why: str  #: "compiled (mypyc)" or why the pure module is used


def source_digest(source: Path) -> str:
    """The SHA-256 of a pure module's source file (what its twin's ``BUILT_FROM`` must equal)."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def twin(module: ModuleType) -> Chosen:
    """The compiled twin of ``module`` if it was built from ``module``'s current source, else ``module``."""
    try:
        native = importlib.import_module(module.__name__ + SUFFIX)
    except ImportError:
        return Chosen(module, False, "pure Python (no compiled twin built: python -m tools.native build)")
    built_from = getattr(native, "BUILT_FROM", None)
    if built_from != source_digest(Path(module.__file__ or "")):
        return Chosen(module, False, "pure Python (the compiled twin was built from an older source: "
                                     "python -m tools.native build)")
    return Chosen(native, True, "compiled (mypyc)")
