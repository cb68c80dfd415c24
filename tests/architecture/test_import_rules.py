"""Rooms import downward only: read every module's imports (all of them, also those inside
functions and under ``TYPE_CHECKING``: a circle drawn for the type checker is still a circle) and
fail on any edge ARCHITECTURE.md forbids."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "mailcrate"


@dataclass(frozen=True)
class Edge:
    importer: str  # dotted module name
    imported: str  # dotted module name (for "from x import y": x.y when y is a module, else x)
    names: tuple[str, ...]
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} -> {self.imported} {list(self.names) or ''}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_module(dotted: str) -> bool:
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def edges() -> Iterator[Edge]:
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Edge(importer, alias.name, (), node.lineno)
            elif isinstance(node, ast.ImportFrom):
                module = _resolve(importer, path.name == "__init__.py", node)
                for alias in node.names:
                    child = f"{module}.{alias.name}"
                    if _is_module(child):
                        yield Edge(importer, child, (), node.lineno)
                    else:
                        yield Edge(importer, module, (alias.name,), node.lineno)


def _within(module: str, *rooms: str) -> bool:
    return any(module == f"mailcrate.{room}" or module.startswith(f"mailcrate.{room}.") for room in rooms)


ALL_EDGES = [e for e in edges() if e.imported.startswith("mailcrate")]

#: (who, may not import, why) — the rules of ARCHITECTURE.md's "Rooms".
RULES = [
    (
        ("services", "protocol", "policy", "storage", "accounts", "datadir", "config"),
        ("server", "export", "admin", "cli", "runner", "migrate"),
        "the service layer and what it stands on know nothing of their callers",
    ),
    (("jobs",), ("export", "runner", "server", "admin", "cli"), "claiming jobs knows nothing of exporting"),
    (("export",), ("server", "runner", "admin", "cli"), "the exporter reaches services through invoke"),
    (("mail",), ("export", "jobs", "server", "services", "admin", "cli", "runner"), "sources stand alone"),
    (("migrate",), ("cli", "server", "runner"), "migrate orchestrates the admin tool; commands call it"),
    (("admin",), ("migrate", "cli"), "the admin tool's pieces know nothing of the migration over them"),
    (
        ("audit", "logs"),
        ("services", "jobs", "export", "server", "admin", "cli", "runner"),
        "the audit trail and the log format record; they know nothing of who calls them",
    ),
]


@pytest.mark.parametrize("who, forbidden, why", RULES, ids=[r[0][0] for r in RULES])
def test_rooms_import_downward_only(who: tuple[str, ...], forbidden: tuple[str, ...], why: str) -> None:
    bad = [str(e) for e in ALL_EDGES if _within(e.importer, *who) and _within(e.imported, *forbidden)]
    assert not bad, f"{why}:\n" + "\n".join(bad)


def test_the_source_interface_imports_no_concrete_source() -> None:
    """mail/base.py loads sources by name (its SOURCE_TYPES registry); the combiner of several
    sources is the only mail module it may name."""
    bad = [
        str(e)
        for e in ALL_EDGES
        if e.importer == "mailcrate.mail.base"
        and _within(e.imported, "mail")
        and e.imported != "mailcrate.mail.composite"
    ]
    assert not bad, "\n".join(bad)


def _private_uses(path: Path) -> Iterator[str]:
    """Private names an export module takes from outside ``mailcrate.export``: imported
    (``from x import _y``) or reached through an imported module (``module._y``)."""
    importer = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    outside_modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _resolve(importer, path.name == "__init__.py", node)
            if _within(module, "export"):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and alias.name != "__future__":
                    yield f"{importer}:{node.lineno} imports {module}.{alias.name}"
                if _is_module(f"{module}.{alias.name}"):
                    outside_modules[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mailcrate") and not _within(alias.name, "export"):
                    outside_modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in outside_modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            yield f"{importer}:{node.lineno} uses {outside_modules[node.value.id]}.{node.attr}"


def test_export_takes_no_private_name_from_another_package() -> None:
    bad = [use for path in sorted((PACKAGE / "export").rglob("*.py")) for use in _private_uses(path)]
    assert not bad, "\n".join(bad)


def test_the_rules_see_the_edges_they_judge() -> None:
    """The reader finds relative, nested and TYPE_CHECKING imports (else every rule passes)."""
    importers = {e.importer for e in ALL_EDGES}
    assert {"mailcrate.server.dispatch", "mailcrate.export.job", "mailcrate.jobs.worker"} <= importers
    assert any(
        e.importer == "mailcrate.services.context" and e.imported == "mailcrate.services.base"
        for e in ALL_EDGES
    )
    assert any(e.importer == "mailcrate.export.job" and _within(e.imported, "jobs") for e in ALL_EDGES)
