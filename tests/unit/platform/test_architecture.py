"""The tree's import rule: the platform (`flk`) knows no service and no tool; a service knows the
platform and itself, never another service or a tool; the tools may use everything.

Every import counts, also the lazy ones inside functions, so a rule broken "only at run time" fails here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").is_file())


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def violations(package_dir: Path, forbidden) -> list[str]:
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        for module in sorted(imported_modules(path)):
            reason = forbidden(module)
            if reason:
                found.append(f"{path.relative_to(ROOT)} imports {module} ({reason})")
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def _service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


@pytest.mark.unit
def test_the_platform_imports_no_service_and_no_tool():
    def forbidden(module: str) -> str | None:
        if _top(module) == "services":
            return "a service"
        if _top(module) in {"tools", "bench", "tests"}:
            return "outside the platform"
        return None

    assert violations(ROOT / "flk", forbidden) == []


@pytest.mark.unit
@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_the_platform_and_itself(service: str):
    def forbidden(module: str) -> str | None:
        other = _service_of(module)
        if other is not None and other != service:
            return "another service"
        if module == "services" and service:
            return None
        if _top(module) in {"tools", "bench", "tests"}:
            return "outside the services"
        return None

    assert violations(ROOT / "services" / service, forbidden) == []


@pytest.mark.unit
def test_the_rule_sees_a_lazy_import_inside_a_function(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from services.listing.domain import policy\n    import tools.cli\n")
    assert {"services.listing.domain", "services.listing.domain.policy", "tools.cli"} <= imported_modules(module)
