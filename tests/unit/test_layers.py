"""The package's layers: dependencies point one way (README, "Development"), and the sync core and
the feed never import Airflow. Read from the source, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "providers" / "facebook_catalog"

#: What each part of the package may import from the package, besides itself.
ALLOWED: dict[str, set[str]] = {
    # compat: the one module that picks an Airflow import by version (Airflow glue only).
    "dags": {"operators", "sync", "hooks", "storage", "feed", "triggers", "links", "compat"},
    "operators": {"sync", "hooks", "storage", "feed", "triggers", "links", "ingest"},
    "sync": {"hooks", "storage", "feed"},
    "triggers": {"hooks"},
    "hooks": {"get_provider_info"},
    "storage": set(),
    "links": set(),
    "ingest": {"feed"},
    "feed": set(),
    "emulator": set(),
}
#: Parts with no Airflow import at all, and the one reach into Airflow each may make (why: beside it).
AIRFLOW_FREE: dict[str, set[str]] = {
    "feed": set(),
    "emulator": set(),
    "ingest": set(),
    # Airflow's secrets masker is process state, not an object to pass in (sync/metrics.py).
    "sync": {"airflow.providers.common.compat.sdk"},
}


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_checking: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_checking |= {id(child) for child in ast.walk(node)}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if part_of(p) in ALLOWED)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_dependencies_point_one_way(path: Path) -> None:
    part = part_of(path)
    wrong = [
        f"line {line}: {module}"
        for line, module in imports(path)
        if module.startswith("facebook_catalog.")
        and (target := module.split(".")[1]) != part
        and target not in ALLOWED[part]
    ]
    assert not wrong, f"{part}/ may import only {sorted(ALLOWED[part])} from the package: {wrong}"


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if part_of(p) in AIRFLOW_FREE],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_the_core_does_not_import_airflow(path: Path) -> None:
    allowed = AIRFLOW_FREE[part_of(path)]
    wrong = [
        f"line {line}: {module}"
        for line, module in imports(path)
        if (module == "airflow" or module.startswith("airflow.")) and module not in allowed
    ]
    assert not wrong, f"{path.relative_to(PACKAGE)} imports Airflow: {wrong}"


def test_the_rules_hold_for_every_part() -> None:
    """A new folder in the package must be given its place here."""
    parts = {part_of(p) for p in PACKAGE.rglob("*.py")}
    assert parts - set(ALLOWED) <= {"__init__", "cli", "compat", "get_provider_info", "example_dags"}
