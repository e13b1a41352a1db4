"""Build the compiled twins of the hot modules (``flk.native.COMPILED``) with mypyc.

    python -m tools.native build     # each twin whose source changed (./run setup runs this)
    python -m tools.native status    # which twins are built and current
    python -m tools.native clean     # remove them (the pure modules are used)

For each module: its source is copied beside it as ``<module>_native.py`` with ``BUILT_FROM = "<sha256 of
the source>"`` added, mypyc compiles that copy in place (a C compiler and Python's headers are needed),
and the copy is removed: what stays is the extension ``<module>_native.<abi>.so`` and mypyc's runtime
library for it. ``flk.native.twin`` uses a twin only if its ``BUILT_FROM`` is the current source's.
Where no compiler is at hand the build says so and the pure modules are used (ADR 0010).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from flk.native import COMPILED, SUFFIX, source_digest


_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
path, work = sys.argv[1:3]
setup(name="flk-native",
      script_args=["build_ext", "--inplace", "--build-temp", work + "/temp", "--build-lib", work + "/lib"],
      ext_modules=mypycify(["--ignore-missing-imports", "--follow-imports=silent", path], target_dir=work + "/c"))
"""


def _source(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise SystemExit(f"{name}: no Python source found")
    return Path(spec.origin)


def _built(source: Path) -> list[Path]:
    """A twin's files: its extension and mypyc's runtime library for it."""
    stem = source.stem + SUFFIX
    return sorted(p for p in source.parent.glob(f"{stem}*.so") if p.name.split(".")[0] in (stem, stem + "__mypyc"))


def _current(source: Path) -> bool:
    """Whether the twin's recorded source digest is the source's (read from the extension's bytes: neither
    module is imported here, so a build in the same process sees the new one)."""
    digest = source_digest(source).encode()
    return any(digest in p.read_bytes() for p in _built(source))


def build(names: tuple[str, ...] = COMPILED, force: bool = False) -> int:
    failures = 0
    for name in names:
        source = _source(name)
        if not force and _current(source):
            print(f"{name}: compiled twin is current")
            continue
        for old in _built(source):
            old.unlink()
        copy = source.with_name(source.stem + SUFFIX + ".py")
        digest = source_digest(source)
        copy.write_bytes(source.read_bytes() + f'\n\nBUILT_FROM = "{digest}"  # (tools/native.py)\n'.encode())
        work = Path(tempfile.mkdtemp(prefix="flk-native-"))
        root = Path(*source.parts[: len(source.parts) - name.count(".") - 1])  # where the top package lives
        try:
            # mypyc's setuptools build: C sources and objects in a scratch directory, the extension and
            # its runtime library in place (beside the copy, i.e. the module)
            result = subprocess.run(
                [sys.executable, "-c", _SETUP, str(copy.relative_to(root)), str(work)],
                cwd=root, env=dict(os.environ, MYPY_CACHE_DIR=str(work / "mypy_cache")),
                capture_output=True, text=True)
        finally:
            copy.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
        if result.returncode != 0:
            failures += 1
            tail = (result.stdout + result.stderr).strip().splitlines()[-8:]
            print(f"{name}: not compiled (the pure module is used):\n  " + "\n  ".join(tail), file=sys.stderr)
            continue
        print(f"{name}: compiled ({', '.join(p.name for p in _built(source))})")
    return failures


def status(names: tuple[str, ...] = COMPILED) -> int:
    for name in names:
        source = _source(name)
        if not _built(source):
            state = "not built"
        else:
            state = "current" if _current(source) else "stale (built from an older source)"
        print(f"{name}: {state}")
    return 0


def clean(names: tuple[str, ...] = COMPILED) -> int:
    for name in names:
        for path in _built(_source(name)):
            path.unlink()
            print(f"removed {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "status", "clean"])
    parser.add_argument("--force", action="store_true", help="build even the twins that are current")
    args = parser.parse_args(argv)
    if args.command == "build":
        return 1 if build(force=args.force) else 0
    return status() if args.command == "status" else clean()


if __name__ == "__main__":
    raise SystemExit(main())
