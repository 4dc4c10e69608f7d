"""The compiled model (apiclab.native): used only when current, and it computes what the Python
model computes — the same counts, digests, proofs and conformance results, run side by side in
child processes (the suite itself runs the Python model: tests/conftest.py)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from apiclab import native

APICLAB = [sys.executable, "-m", "apiclab"]


def _can_compile() -> str | None:
    """Why this machine cannot build the native modules, or None when it can."""
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        return "no C compiler"
    include = sysconfig.get_paths().get("include")
    if not include or not (Path(include) / "Python.h").exists():
        return "no Python.h"
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc is not installed (the dev extra)"
    return None


def _manifest() -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(native.MANIFEST.read_text())
        return loaded
    except (OSError, ValueError):
        return None


def _require_build() -> None:
    """Skip where no build can exist; fail where one could and is missing or stale (CI builds
    it: `make test` runs `make native` first)."""
    why_not = _can_compile()
    if why_not is not None:
        pytest.skip(f"the native build cannot be made here: {why_not}")
    manifest = _manifest()
    assert manifest is not None, "no native build although this machine can make one: make native"
    stale = native._stale(manifest)
    assert stale is None, f"the native build is stale ({stale}): make native"


def _run(args: list[str], compiled: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APICLAB_NATIVE": "1" if compiled else "0"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def test_the_build_is_loaded_when_current() -> None:
    _require_build()
    code = ("import apiclab.native as n, apiclab.engine.core as c, apiclab.hypervisor.machine as m;"
            "print(n.status, n.compiled(c), n.compiled(m))")
    out = _run([sys.executable, "-c", code], compiled=True)
    assert out.stdout.split() == ["native", "True", "True"], out.stderr
    out = _run([sys.executable, "-c", code], compiled=False)
    assert out.stdout.split()[-2:] == ["False", "False"]


@pytest.mark.parametrize("args", [
    ["--profile", "kvm-3.17", "--profile", "kvm-3.19", "--profile", "kvm-3.17:apicv-off",
     "--reboots", "300"],
    ["--profile", "kvm-3.17", "--guest", "linux", "--reboots", "200", "--seed", "7"],
    ["--profile", "kvm-3.17", "--clock-source", "lapic-timer", "--after-bsod", "power-cycle",
     "--reboots", "200"],
])
def test_reproduce_gives_the_same_counts_and_digests_compiled(args: list[str]) -> None:
    _require_build()
    runs = [_run([*APICLAB, "reproduce", "--json", *args], compiled=c) for c in (False, True)]
    python, compiled = (json.loads(r.stdout) for r in runs)
    assert python == compiled
    assert "trace_sha256" in json.dumps(python)


@pytest.mark.parametrize("profile", ["kvm-3.17", "kvm-3.19"])
def test_exhaustive_explore_finds_the_same_graph_compiled(profile: str) -> None:
    _require_build()
    args = [*APICLAB, "explore", "--property", "clock-tick", "--profile", profile,
            "--exhaustive", "--json"]
    python, compiled = (_run(args, compiled=c) for c in (False, True))
    assert python.returncode == compiled.returncode
    a, b = json.loads(python.stdout), json.loads(compiled.stdout)
    for doc in (a, b):  # wall times differ; everything the search found must not
        del doc["coverage"]["seconds"]
    assert a["coverage"]["states"] > 100
    assert a == b


def test_the_model_agrees_with_itself_on_every_conform_case_compiled() -> None:
    _require_build()
    code = """
import json
from apiclab.conform.case import load_builtin
from apiclab.executors.model import ModelExecutor
ex = ModelExecutor()
out = {}
for case in load_builtin():
    out[case.name] = [repr(e) for e in ex.run(case).trace.events]
print(json.dumps(out))
"""
    python, compiled = (_run([sys.executable, "-c", code], compiled=c) for c in (False, True))
    assert python.returncode == 0, python.stderr
    assert len(json.loads(python.stdout)) > 100
    assert json.loads(python.stdout) == json.loads(compiled.stdout)


def test_a_changed_source_or_another_python_makes_the_build_stale() -> None:
    manifest = {"python": native.build_tag(), "shared": [],
                "sources": {m: native.fingerprint(native.source_of(m)) for m in native.MODULES}}
    assert native._stale(manifest) is None
    changed = copy.deepcopy(manifest)
    first = native.MODULES[0]
    changed["sources"][first].update(size=-1, sha256="0" * 64)
    assert native._stale(changed) == f"{first.replace('.', '/')}.py changed since the build"
    touched = copy.deepcopy(manifest)
    touched["sources"][first]["mtime_ns"] = 0  # same bytes, another time: still current
    assert native._stale(touched) is None
    other = {**manifest, "python": ".cpython-39-x86_64-linux-gnu.so 3.9.0"}
    assert "built for .cpython-39" in (native._stale(other) or "")
    fewer = {**manifest, "sources": dict(list(manifest["sources"].items())[1:])}
    assert native._stale(fewer) == "built for another set of modules"


def test_a_stale_build_is_reported_in_one_line_and_python_runs(tmp_path: Path) -> None:
    """A copy of the package with a build whose manifest names an older source: the import
    says so on stderr in one line and runs the Python modules."""
    root = tmp_path / "checkout"
    shutil.copytree(native.SOURCE_ROOT / "apiclab", root / "apiclab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    build = root / "build" / "native"
    build.mkdir(parents=True)
    sources = {m: native.fingerprint(root / (m.replace(".", "/") + ".py")) for m in native.MODULES}
    sources[native.MODULES[3]]["sha256"] = "0" * 64
    sources[native.MODULES[3]]["size"] = 0
    (build / "manifest.json").write_text(json.dumps(
        {"python": native.build_tag(), "sources": sources, "shared": []}))
    code = "import apiclab.native as n, apiclab.engine.core as c; print(n.status, n.compiled(c))"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         env={**os.environ, "APICLAB_NATIVE": "1", "PYTHONPATH": str(root)},
                         timeout=60)
    assert out.returncode == 0
    assert out.stdout.split()[-1] == "False"
    assert out.stderr.count("\n") == 1
    assert f"{native.MODULES[3].replace('.', '/')}.py changed since the build" in out.stderr
