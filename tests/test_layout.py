"""The package layout shows the architecture, and imports only run downward.

Every module's evoplastic imports — top-level and inside functions — are read with ast and
checked against the layer it may depend on; a family never imports another family, the
outer loops, the run machinery or analysis.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "evoplastic"

LEAVES = {"evoplastic", "evoplastic.seeding", "evoplastic.precision", "evoplastic.stats", "evoplastic.yamlfile",
          "evoplastic.errors", "evoplastic.core.registry"}
"""Modules anything may import: no evoplastic imports of their own beyond errors (torch-free where it matters)."""
SCHEMA = {"evoplastic.config", "evoplastic.plugins"}
"""The shared config schema and the plug-in registries: torch-free, and they name no family."""
FAMILY_SHARED = SCHEMA | {"evoplastic.core"}
"""What any family may build on; a family never imports another family, the outer loops, run or analysis."""
ALLOWED = {  # module prefix -> prefixes it may import (besides itself and LEAVES)
    "evoplastic.config": set(),  # families register with it by name; it imports none of them
    "evoplastic.plugins": {"evoplastic.config"},
    "evoplastic.core": {"evoplastic.core"},
    "evoplastic.families": FAMILY_SHARED,  # the registry line per family: names as strings, no imports
    "evoplastic.families.paper": FAMILY_SHARED | {"evoplastic.families.paper"},
    "evoplastic.families.paper.config": SCHEMA | {"evoplastic.families.paper.terms", "evoplastic.families.paper.space"},
    "evoplastic.families.paper.space": SCHEMA | {"evoplastic.families.paper.terms"},
    "evoplastic.families.kcap": FAMILY_SHARED | {"evoplastic.families.kcap"},
    "evoplastic.families.kcap.config": SCHEMA,
    # spiking networks learn the paper family's image tasks (its task section, data and sampler) and are scored
    # beside its rate network of the same shape: a declared dependency on the paper family, never the reverse
    "evoplastic.families.spiking": FAMILY_SHARED | {"evoplastic.families.spiking", "evoplastic.families.paper"},
    "evoplastic.families.spiking.config": SCHEMA | {"evoplastic.families.paper.config"},
    "evoplastic.outer": FAMILY_SHARED | {"evoplastic.outer"},
    "evoplastic.run": FAMILY_SHARED | {"evoplastic.families", "evoplastic.outer", "evoplastic.run"},
    # analysis reaches a family through the registry (evoplastic.families) and the protocol; it still reads the
    # paper family's rule-text and stream modules directly (the evaluate command's image-task options)
    "evoplastic.analysis": FAMILY_SHARED | {"evoplastic.families", "evoplastic.run", "evoplastic.analysis"},
    "evoplastic.bench": FAMILY_SHARED | {"evoplastic.families", "evoplastic.run", "evoplastic.bench"},
    "evoplastic.api": FAMILY_SHARED | {"evoplastic.families", "evoplastic.outer", "evoplastic.run",
                                       "evoplastic.analysis", "evoplastic.callbacks"},
    "evoplastic.callbacks": set(),
    "evoplastic": set(),  # the leaves and the lazy public names of __init__
    "evoplastic.cli": FAMILY_SHARED | {"evoplastic.families", "evoplastic.outer", "evoplastic.run", "evoplastic.api",
                                       "evoplastic.analysis", "evoplastic.bench"},  # the top: everything
    "evoplastic.__main__": {"evoplastic.cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def evoplastic_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("evoplastic"):
            names |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("evoplastic")}
    return names


def rule_for(name: str) -> set[str]:
    key = max((k for k in ALLOWED if name == k or name.startswith(k + ".")), key=len)
    parts = name.split(".")
    if key == "evoplastic.families" and len(parts) > 2:  # a family no entry names: its own package and the shared
        key = ".".join(parts[:3])
        return FAMILY_SHARED | {key} | LEAVES
    return ALLOWED[key] | {key} | LEAVES


def test_a_family_without_an_entry_may_not_import_another_family(tmp_path):
    path = tmp_path / "loop.py"
    path.write_text("from evoplastic.families.paper.network import Activation\nfrom evoplastic.core.family import "
                    "ThetaSpace\nfrom evoplastic.families.newfamily.config import X\n")
    assert disallowed("evoplastic.families.newfamily.loop", path) == [
        "evoplastic.families.paper.network", "evoplastic.families.paper.network.Activation"]


def within(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def disallowed(name: str, path: Path) -> list[str]:
    """The evoplastic imports of the file at path that module ``name``'s layer may not make."""
    # "evoplastic" itself is a leaf (its __version__), not a prefix: it would allow everything.
    # An imported name may be a module or a symbol of one: accepted when it or its parent is allowed.
    prefixes = rule_for(name) - {"evoplastic"}
    return sorted(i for i in evoplastic_imports(path)
                  if i not in ("evoplastic", "evoplastic.__version__")
                  and not within(i, prefixes) and not within(i.rsplit(".", 1)[0], prefixes))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downward(path):
    name = module_name(path)
    bad = disallowed(name, path)
    assert not bad, f"{name} imports {bad}, above or beside its layer (allowed: {sorted(rule_for(name))})"


def test_a_wrong_import_is_caught(tmp_path):
    """The check itself can fail: the paper's config schema importing analysis is refused."""
    path = tmp_path / "config.py"
    path.write_text("from evoplastic.analysis.rule import Rule\nfrom evoplastic.families.paper.terms import N_TERMS\n"
                    "from evoplastic import __version__\n")
    assert disallowed("evoplastic.families.paper.config", path) == ["evoplastic.analysis.rule",
                                                                    "evoplastic.analysis.rule.Rule"]


def test_every_family_subpackage_is_registered():
    from evoplastic.families import BUILTIN_FAMILIES

    on_disk = {p.name for p in (PACKAGE / "families").iterdir() if (p / "__init__.py").is_file()}
    assert on_disk == set(BUILTIN_FAMILIES)


def test_the_cli_and_the_config_schema_load_without_torch():
    code = ("import sys, evoplastic.cli, evoplastic.families.paper.config, evoplastic.families.kcap.config; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def import_graph() -> dict[str, set[str]]:
    """Module -> the evoplastic modules it imports (top level or inside functions), by ast."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in evoplastic_imports(path):
            target = imported if imported in modules else imported.rsplit(".", 1)[0]
            if target in modules and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, as the modules on it (a depth-first search from each module)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycles_even_through_deferred_imports():
    assert cycles(import_graph()) == []


def test_the_cycle_check_can_fail():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
