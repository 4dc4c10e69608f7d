"""Every command that compares runs goes through the one `first_difference`, by construction:
it is defined once (`apiclab.executors.compare`), no other module defines a comparison loop of its
own under that or the older names, and each comparing module imports it (the VMX command through
`apiclab.executors.bochs_vmx.differing_fields`, which does)."""

from __future__ import annotations

import ast
from pathlib import Path

import apiclab

ROOT = Path(apiclab.__file__).parent
COMPARE = "apiclab.executors.compare"
# module -> the module through which it compares
COMPARING = {
    "conform/match.py": "conform/match.py",
    "conform/differential.py": "conform/match.py",
    "backends/kvm/deviation.py": "backends/kvm/deviation.py",
    "backends/kvm/storm.py": "backends/kvm/deviation.py",
    "cli/vmx_cmd.py": "executors/bochs_vmx.py",
}


def _tree(rel: str) -> ast.Module:
    return ast.parse((ROOT / rel).read_text(encoding="utf-8"))


def _imports_from(tree: ast.Module) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.setdefault(node.module, set()).update(a.name for a in node.names)
    return found


def test_first_difference_is_defined_once() -> None:
    defined = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name in (
                    "first_difference", "differences"):
                defined.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert sorted(defined) == ["executors/compare.py:differences",
                               "executors/compare.py:first_difference"]


def test_every_comparing_command_imports_the_one_comparison() -> None:
    for module, through in COMPARING.items():
        names = _imports_from(_tree(through)).get(COMPARE, set())
        assert "first_difference" in names, (module, through)
    # and each goes through the module named for it
    assert "apiclab.conform.match" in _imports_from(_tree("conform/differential.py"))
    assert "apiclab.backends.kvm.deviation" in _imports_from(_tree("backends/kvm/storm.py"))
    vmx = _imports_from(_tree("cli/vmx_cmd.py"))
    assert "differing_fields" in vmx.get("apiclab.executors.bochs_vmx", set())


def test_the_vmx_comparison_names_the_differing_fields_through_it() -> None:
    from apiclab.backends.bochs_vmx.cases import CASES
    from apiclab.executors.bochs_vmx import differing_fields
    from apiclab.executors.model import predict

    a, b = predict(CASES[0]), predict(CASES[1])
    assert differing_fields(a, a) == []
    assert differing_fields(a, b) == [name for name in a.fields()
                                      if a.fields()[name] != b.fields()[name]]
    assert differing_fields(a, b)  # the stale-RVI case and the clean case differ
