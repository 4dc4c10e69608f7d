"""The model's hot modules compiled to C with mypyc, used when a build of them is present and
current; otherwise the same modules run as Python.

`make native` (`python -m apiclab.native_build`) compiles the modules in `MODULES` into
`build/native/` of a source checkout and writes a manifest of the sources it compiled. When the
package is imported, `activate()` puts a finder in front of Python's import system that loads
those modules from the build, but only if every source still matches the manifest (size and
modification time, else its SHA-256) and the build is for this Python: compiled modules call each
other directly, so one stale module would run old code even through the fresh ones, and a build
is used whole or not at all. A stale build is reported in one line on stderr and ignored.

`APICLAB_NATIVE=0` runs everything as Python (the test suite does, so that tests may patch
module globals; tests/test_native.py compares the two). The compiled modules compute the same
traces, counts and digests as the Python ones: mypyc compiles the same code and checks its types
at run time, it does not change what it computes.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

# The modules a reboot storm spends its time in (bench/reboot_cycles.py): the engine, the CPU
# and its devices, KVM's vCPU and the machine, the APIC and VMX rules, the storm itself.
MODULES = (
    "apiclab.engine.core",
    "apiclab.engine.idle",
    "apiclab.engine.choices",
    "apiclab.engine.holding",
    "apiclab.arch.lapic",
    "apiclab.arch.vmx",
    "apiclab.arch.ioapic",
    "apiclab.platform.cpu",
    "apiclab.platform.hpet",
    "apiclab.platform.pit",
    "apiclab.platform.lapic_timer",
    "apiclab.hypervisor.kvm",
    "apiclab.hypervisor.kvm_entry",
    "apiclab.hypervisor.kvm_restore",
    "apiclab.hypervisor.machine",
    "apiclab.scenarios.win7_reboot",
    "apiclab.guest.windows7",
    "apiclab.guest.linux",
    "apiclab.guest.hal",
    "apiclab.arch.vectors",
    "apiclab.platform.tsc",
    "apiclab.platform.pc",
    # and what an exhaustive `explore` runs between two steps of the model: the state key and
    # the search's own loop (bench/explore_exhaustive.py; not the properties: their summaries
    # are their docstrings, which a compiled function does not keep)
    "apiclab.hypervisor.state_key",
    "apiclab.explore.graph",
)

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the checkout holding `apiclab/`
BUILD_DIR = SOURCE_ROOT / "build" / "native"
MANIFEST = BUILD_DIR / "manifest.json"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

# what `activate` found: "native", "python (<why>)"
status = "python (not activated)"


def source_of(module: str) -> Path:
    return SOURCE_ROOT / (module.replace(".", "/") + ".py")


def fingerprint(path: Path) -> dict[str, object]:
    """What the manifest records of a compiled source."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def build_tag() -> str:
    """The interpreter a build is for: its extension suffix and version."""
    return f"{SUFFIX} {sys.version.split()[0]}"


def _stale(manifest: dict[str, object]) -> str | None:
    """Why the build in `manifest` cannot be used now, or None when it can."""
    if manifest.get("python") != build_tag():
        return f"built for {manifest.get('python')}, running {build_tag()}"
    sources = manifest.get("sources")
    if not isinstance(sources, dict) or sorted(sources) != sorted(MODULES):
        return "built for another set of modules"
    for module, recorded in sources.items():
        path = source_of(module)
        try:
            st = path.stat()
        except OSError:
            return f"{path.relative_to(SOURCE_ROOT)} is gone"
        if st.st_size == recorded["size"] and st.st_mtime_ns == recorded["mtime_ns"]:
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() != recorded["sha256"]:
            return f"{path.relative_to(SOURCE_ROOT)} changed since the build"
    return None


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules (and mypyc's shared library of them) in the build."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.machinery.ModuleSpec(fullname, loader, origin=str(file))


def activate() -> None:
    """Use the compiled modules if a current build of them exists (see the module's text)."""
    global status
    if os.environ.get("APICLAB_NATIVE", "1") == "0":
        status = "python (APICLAB_NATIVE=0)"
        return
    try:
        manifest = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        status = "python (no native build: `make native`)"
        return
    why = _stale(manifest)
    if why is None:
        files = {m: BUILD_DIR / (m.replace(".", "/") + SUFFIX) for m in MODULES}
        for shared in manifest.get("shared", []):
            files[shared] = BUILD_DIR / (shared + SUFFIX)
        if all(f.exists() for f in files.values()):
            if not any(m in sys.modules for m in MODULES):
                sys.meta_path.insert(0, _Finder(files))
                status = "native"
                return
            why = "the Python modules were imported first"
        else:
            why = "files of the build are missing"
    status = f"python (native build not used: {why})"
    print(f"apiclab: native build not used, running Python: {why} (`make native` rebuilds)",
          file=sys.stderr)


def compiled(module: ModuleType) -> bool:
    """Whether `module` was loaded from the native build."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)
