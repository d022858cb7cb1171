"""The architecture the README draws, checked on the source: no private name crosses a module boundary,
rooms import each other one way only, experiments never import each other, long files say why they are
long, and tests/ mirrors gm/.

Everything here reads the source with ``ast`` (nothing is imported), so a violation fails in milliseconds.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gm", "experiments", "tests")

# Which room may import which (README: "Architecture: rooms and their one-way arrows"). The base modules
# (types, loops, xla) import no room; every room may import the base.
BASE = {"types", "loops", "xla", "validation"}
ROOMS = {
    "types": set(),
    "xla": set(),
    "validation": set(),
    "loops": {"xla"},
    "bn": BASE,
    "temporal": BASE | {"bn"},
    "learn": BASE | {"bn", "temporal"},
    "data": BASE | {"bn", "learn"},
    "deep": BASE | {"data"},
    "parallel": BASE | {"bn", "temporal", "learn", "data", "deep"},
}
# Experiments that run the others by design (the benchmark orchestrator), and the shared runner.
EXPERIMENT_ORCHESTRATORS = {"bench_all"}
EXPERIMENT_SHARED = {"_common"}
# Test folders that mirror no gm room.
EXTRA_TEST_FOLDERS = {"experiments", "notebooks", "docs"}
MAX_LINES = 500


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if ".venv" in path.parts or "site" in path.parts:
                continue
            yield path


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _ours(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = _module_name(path).split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path):
    """(line, importing module, imported module, imported name or None) for every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None, alias.asname
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(path, node)
            for alias in node.names:
                yield node.lineno, module, alias.name, alias.asname


def _private_allowed(module: str, name: str | None) -> bool:
    parts = module.split(".") + ([name] if name else [])
    # The experiments' shared runner is a module of the experiments package, named private on purpose
    # (it is not an experiment); what it defines is public.
    private = [p for p in parts if _is_private(p)]
    return private == ["_common"] and parts[0] == "experiments"


def test_no_private_name_crosses_a_module():
    bad = []
    for path in _sources():
        here = _module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        module_aliases = {}
        for lineno, module, name, asname in _imports(path):
            if not _ours(module):
                continue
            target = f"{module}.{name}" if name else module
            if (any(_is_private(p) for p in module.split(".")) or (name and _is_private(name))) and \
                    not _private_allowed(module, name) and module != here:
                bad.append(f"{path.relative_to(ROOT)}:{lineno}: imports {target}")
            # Module objects bound here, whose private attributes must not be read.
            if name is None:
                module_aliases[asname or module.split(".")[0]] = module if asname else module.split(".")[0]
            else:
                module_aliases[asname or name] = target
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                chain = []
                value = node.value
                while isinstance(value, ast.Attribute):
                    chain.append(value.attr)
                    value = value.value
                if isinstance(value, ast.Name) and value.id in module_aliases:
                    owner = ".".join([module_aliases[value.id]] + chain[::-1])
                    if _is_module(owner) and owner != here and not owner.endswith("._common"):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: reads {owner}.{node.attr}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` names one of our modules (not a function or object inside one: JAX's
    ``jitted._cache_size`` is JAX's API, not a private name of ours)."""
    if not _ours(dotted):
        return False
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "gm" and len(parts) > 1 else None


def test_rooms_import_one_way():
    bad = []
    for path in (ROOT / "gm").rglob("*.py"):
        room = _room(_module_name(path))
        if room is None:
            continue
        assert room in ROOMS, f"gm.{room} is not in the README's architecture (add it to ROOMS)"
        for lineno, module, name, _ in _imports(path):
            target = _room(module) or (name if module == "gm" else None)
            if target is None or target == room:
                continue
            if target not in ROOMS[room]:
                bad.append(f"{path.relative_to(ROOT)}:{lineno}: gm.{room} imports gm.{target}")
    assert not bad, "imports against the rooms' one-way arrows:\n" + "\n".join(bad)


def test_experiments_do_not_import_each_other():
    bad = []
    for path in (ROOT / "experiments").glob("*.py"):
        if path.stem in EXPERIMENT_ORCHESTRATORS:
            continue
        for lineno, module, name, _ in _imports(path):
            parts = module.split(".") + ([name] if name else [])
            if parts[0] != "experiments" or len(parts) < 2:
                continue
            if parts[1] not in EXPERIMENT_SHARED and parts[1] != path.stem:
                bad.append(f"{path.relative_to(ROOT)}:{lineno}: imports experiments.{parts[1]}")
    assert not bad, "experiments importing each other (share code through experiments/_common.py):\n" + \
        "\n".join(bad)


def test_long_files_say_why():
    bad = []
    for path in (ROOT / "gm").rglob("*.py"):
        lines = len(path.read_text().splitlines())
        if lines <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if "Length:" not in doc:
            bad.append(f"{path.relative_to(ROOT)}: {lines} lines and no 'Length:' paragraph in its docstring")
    assert not bad, "\n".join(bad)


def test_tests_mirror_the_package():
    rooms = {p.name for p in (ROOT / "gm").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert not (rooms - folders), f"rooms without a tests/ folder: {sorted(rooms - folders)}"
    stray = folders - rooms - EXTRA_TEST_FOLDERS
    assert not stray, f"tests/ folders that mirror no room of gm/: {sorted(stray)}"


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_every_room_is_in_the_readme(room):
    readme = (ROOT / "README.md").read_text()
    assert f"gm.{room}" in readme or f"gm/{room}" in readme, f"the README's architecture does not name gm.{room}"


def _undefined_globals(path: Path) -> list[str]:
    """Names a function of ``path`` reads as globals that the module never binds and builtins lack (what
    a linter's "undefined name" finds; a NameError waiting for the first call that reaches the line)."""
    import builtins
    import symtable

    source = path.read_text()
    top = symtable.symtable(source, str(path), "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    bound |= set(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__", "__builtins__"}
    if "*" in source and "import *" in source:  # a star import binds names symtable cannot see
        return []
    missing = []

    def visit(table):
        for child in table.get_children():
            for s in child.get_symbols():
                if s.is_referenced() and s.is_global() and not s.is_assigned() and s.get_name() not in bound:
                    missing.append(f"{path.relative_to(ROOT)}: {child.get_name()} uses {s.get_name()}")
            visit(child)

    visit(top)
    return missing


def test_no_undefined_global_names():
    """Every global a function reads is bound somewhere in its module: a script's results-writing line
    that names an import never made fails here, not after an hour of benchmark."""
    files = sorted((ROOT / "gm").rglob("*.py")) + sorted((ROOT / "experiments").rglob("*.py"))
    missing = [m for f in files for m in _undefined_globals(f)]
    assert not missing, "\n".join(missing)
