"""The listing handlers reach the register only through the unit of work's repository (the port the
in-memory fakes of tests/support/listing_fakes.py stand in for): no database driver, no connection,
no pool, no SQL helper module. Otherwise a handler test on the fakes would pass while production
took another path."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HANDLERS = ROOT / "services/listing/service_layer/handlers.py"


def _tree() -> ast.AST:
    return ast.parse(HANDLERS.read_text(encoding="utf-8"), filename=str(HANDLERS))


def test_the_listing_handlers_import_no_database_driver_and_no_sql_helpers() -> None:
    imported = set()
    for node in ast.walk(_tree()):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    assert not {m for m in imported if m.split(".")[0] == "asyncpg" or m.startswith("services.listing.adapters.reference")}


def test_the_listing_handlers_use_no_connection_and_no_pool() -> None:
    reached = sorted({f"{ast.unparse(node.value)}.{node.attr}" for node in ast.walk(_tree())
                      if isinstance(node, ast.Attribute) and node.attr in {"conn", "acquire"}})
    assert reached == []
