"""Each domain owns its tables: other packages call its service, never import its models."""

from __future__ import annotations

import ast
from pathlib import Path

import app

APP = Path(app.__file__).parent

# What may be imported across domains anyway, and why.
ALLOWED = {
    # the policy file's parsed types (Pydantic), not tables: every domain reads the policy
    "app.policy.models",
}


def owner(path: Path) -> str:
    """The package a module belongs to: app.<domain>, or the module itself at the top."""
    parts = path.relative_to(APP).with_suffix("").parts
    return "app." + parts[0]


def imported_models(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names
                  if name.startswith("app.") and name.endswith(".models")]
    return found


def crossings() -> list[str]:
    found = []
    for path in sorted(APP.rglob("*.py")):
        if path == APP / "models.py":  # imports every table so that Alembic sees them all
            continue
        for line, name in imported_models(ast.parse(path.read_text(), str(path))):
            if name.rsplit(".", 1)[0] != owner(path) and name not in ALLOWED:
                found.append(f"{path.relative_to(APP.parent)}:{line} imports {name}")
    return found


def test_no_domain_imports_another_domains_models() -> None:
    assert crossings() == []


def test_the_check_sees_each_spelling_of_the_import() -> None:
    spellings = ["from app.records.models import Record", "import app.records.models",
                 "from app.records import models"]
    assert [imported_models(ast.parse(text)) for text in spellings] == [
        [(1, "app.records.models")], [(1, "app.records.models")], [(1, "app.records.models")]]
