"""The layer rules of docs/design.md, read from the code's own imports.

`arch` and `engine` are roots: they import nothing else of apiclab (but `apiclab.errors`); only the
command line imports the command line; a guest sees the machine only through `apiclab.guest.platform`;
no module loads one of apiclab's own through importlib,
a dependency that the import graph cannot show.
"""

from __future__ import annotations

import ast
from pathlib import Path

import apiclab

ROOT = Path(apiclab.__file__).parent


def _imports() -> list[tuple[str, int, str, str]]:
    """(file, line, importing module's layer, imported apiclab module) for every import."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        layer = parts[1] if len(parts) > 2 else parts[-1]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif (isinstance(node, ast.Call)
                  and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                names = [f"importlib:{node.args[0].value}"]
            for name in names:
                found.append((str(path.relative_to(ROOT.parent)), node.lineno, layer, name))
    return found


def test_arch_and_engine_import_nothing_else_of_apiclab() -> None:
    bad = [f"{f}:{line} imports {name}" for f, line, layer, name in _imports()
           if layer in ("arch", "engine") and name.startswith("apiclab.")
           and name.split(".")[1] not in (layer, "errors")]
    assert bad == []


def test_only_the_command_line_imports_the_command_line() -> None:
    bad = [f"{f}:{line} imports {name}" for f, line, layer, name in _imports()
           if name.startswith("apiclab.cli") and layer not in ("cli", "__main__")]
    assert bad == []


def test_no_backend_imports_a_report_explore_or_campaign() -> None:
    upward = ("apiclab.explore", "apiclab.campaign", "apiclab.diagnose", "apiclab.conform")
    bad = [f"{f}:{line} imports {name}" for f, line, layer, name in _imports()
           if layer == "backends" and name.startswith(upward)]
    assert bad == []


def test_no_module_loads_apiclab_through_importlib() -> None:
    bad = [f"{f}:{line} {name}" for f, line, _, name in _imports()
           if name.startswith("importlib:apiclab")]
    assert bad == []


def test_guests_see_the_machine_only_through_the_guest_platform() -> None:
    """A guest programs devices through their registers (`apiclab.guest.platform`, `guest.hal`),
    as an OS does; it never reaches into the hypervisor's machine or a backend."""
    below = ("apiclab.hypervisor", "apiclab.backends")
    bad = [f"{f}:{line} imports {name}" for f, line, layer, name in _imports()
           if layer == "guest" and name.startswith(below)]
    assert bad == []


def test_backends_reach_the_executors_only_for_the_one_comparison() -> None:
    """The executors adapt the backends (they import them), so a backend imports of them only
    `apiclab.executors.compare`, which imports nothing of apiclab."""
    bad = [f"{f}:{line} imports {name}" for f, line, layer, name in _imports()
           if layer == "backends" and name.startswith("apiclab.executors")
           and name != "apiclab.executors.compare"]
    assert bad == []
    compare = [name for f, _, _, name in _imports()
               if f.endswith("executors/compare.py") and name.startswith("apiclab")]
    assert compare == []


def test_executors_import_no_command_or_user_facing_layer() -> None:
    upward = ("apiclab.cli", "apiclab.conform", "apiclab.explore", "apiclab.campaign",
              "apiclab.diagnose", "apiclab.report", "apiclab.scenarios")
    bad = [f"{f}:{line} imports {name}" for f, line, layer, name in _imports()
           if layer == "executors" and name.startswith(upward)]
    assert bad == []
