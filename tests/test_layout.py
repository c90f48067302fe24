"""The package layout shows the architecture, and imports only run downward (issue 11).

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

LEAVES = {"evoplastic", "evoplastic.seeding", "evoplastic.precision", "evoplastic.stats", "evoplastic.yamlfile"}
SCHEMA = {"evoplastic.config", "evoplastic.families.paper.config", "evoplastic.families.paper.terms",
          "evoplastic.families.kcap.config"}
ALLOWED = {  # module prefix -> prefixes it may import (besides itself and LEAVES)
    "evoplastic.families.paper.config": {"evoplastic.families.paper.terms"},
    "evoplastic.families.kcap.config": set(),
    "evoplastic.config": SCHEMA,
    "evoplastic.core": {"evoplastic.core"},
    "evoplastic.families.paper": SCHEMA | {"evoplastic.core", "evoplastic.families.paper"},
    "evoplastic.families.kcap": SCHEMA | {"evoplastic.core", "evoplastic.families.kcap"},
    "evoplastic.families": {"evoplastic.core"},  # the registry: families by module name only
    "evoplastic.outer": SCHEMA | {"evoplastic.core", "evoplastic.outer"},
    "evoplastic.run": SCHEMA | {"evoplastic.core", "evoplastic.families", "evoplastic.outer", "evoplastic.run"},
    "evoplastic.analysis": SCHEMA | {"evoplastic.core", "evoplastic.families", "evoplastic.run",
                                     "evoplastic.analysis"},
    "evoplastic.bench": SCHEMA | {"evoplastic.core", "evoplastic.families", "evoplastic.run", "evoplastic.bench"},
    "evoplastic": set(),  # seeding, precision, stats: leaves
    "evoplastic.cli": {"evoplastic"},
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
    return ALLOWED[key] | {key} | LEAVES


def within(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_downward(path):
    name = module_name(path)
    allowed = rule_for(name)
    # an imported name may be a module or a symbol of one: accept it when it or its parent is allowed
    bad = sorted(i for i in evoplastic_imports(path)
                 if not within(i, allowed) and not within(i.rsplit(".", 1)[0], allowed - {"evoplastic"})
                 and i != "evoplastic.__version__")
    assert not bad, f"{name} imports {bad}, above or beside its layer (allowed: {sorted(allowed)})"


def test_every_family_subpackage_is_registered():
    from evoplastic.config import FAMILIES
    from evoplastic.families import FAMILY_MODULES

    on_disk = {p.name for p in (PACKAGE / "families").iterdir() if (p / "__init__.py").is_file()}
    assert on_disk == set(FAMILY_MODULES) == set(FAMILIES)


def test_the_cli_and_the_config_schema_load_without_torch():
    code = ("import sys, evoplastic.cli, evoplastic.families.paper.config, evoplastic.families.kcap.config; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
