"""flk.native: a compiled twin is used only when it was built from the module's current source."""
from __future__ import annotations

import hashlib
import importlib
import sys

import pytest

from flk.native import COMPILED, twin


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package `twinpkg` with a module `hot` (its "twin" is a plain module here: the rule is the same)."""
    root = tmp_path / "twinpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "hot.py").write_text("WHICH = 'pure'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [n for n in sys.modules if n.startswith("twinpkg")]:
        del sys.modules[name]


def _twin_built_from(root, source: bytes) -> None:
    digest = hashlib.sha256(source).hexdigest()
    (root / "hot_native.py").write_text(f"WHICH = 'compiled'\nBUILT_FROM = '{digest}'\n")


def test_a_twin_built_from_the_current_source_is_used(package):
    _twin_built_from(package, (package / "hot.py").read_bytes())
    chosen = twin(importlib.import_module("twinpkg.hot"))
    assert chosen.compiled and chosen.module.WHICH == "compiled"


def test_a_twin_built_from_an_older_source_is_not_used_and_says_why(package):
    _twin_built_from(package, b"WHICH = 'an older pure'\n")
    chosen = twin(importlib.import_module("twinpkg.hot"))
    assert not chosen.compiled and chosen.module.WHICH == "pure"
    assert "older source" in chosen.why and "tools.native build" in chosen.why


def test_without_a_twin_the_pure_module_is_used_and_says_why(package):
    chosen = twin(importlib.import_module("twinpkg.hot"))
    assert not chosen.compiled and chosen.module.WHICH == "pure"
    assert "no compiled twin" in chosen.why


def test_a_twin_without_its_source_digest_is_not_used(package):
    (package / "hot_native.py").write_text("WHICH = 'compiled'\n")
    assert not twin(importlib.import_module("twinpkg.hot")).compiled


@pytest.mark.parametrize("name", COMPILED)
def test_every_listed_module_is_importable_pure(name):
    """The pure module is always there: the definition, and the fallback where nothing was compiled."""
    module = importlib.import_module(name)
    assert module.__file__.endswith(".py")
