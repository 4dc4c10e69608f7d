"""`python -m apiclab.native_build`: compile `apiclab.native.MODULES` with mypyc into
`build/native/` (`make native`). Needs mypy (the `dev` extra), a C compiler and Python's headers.

The build is made in a temporary directory and moved into place whole, with its manifest last;
a build that fails leaves the previous state (no build, or the old one, which `apiclab.native`
then judges by its own manifest) and exits 1 with one line saying why.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from apiclab.native import BUILD_DIR, MANIFEST, MODULES, SUFFIX, build_tag, fingerprint, source_of


def build(quiet: bool = True) -> Path:
    """Compile the modules; return the build directory. Raises RuntimeError naming the failure."""
    try:
        from mypyc.build import mypycify
        from setuptools import setup  # type: ignore[import-untyped]
    except ImportError as e:
        raise RuntimeError(f"mypyc or setuptools is missing ({e}); install the `dev` extra") from e
    sources = [source_of(m) for m in MODULES]
    fingerprints = {m: fingerprint(p) for m, p in zip(MODULES, sources, strict=True)}
    BUILD_DIR.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="native-", dir=BUILD_DIR.parent))
    out = work / "out"
    cwd = os.getcwd()
    log = io.StringIO()
    try:
        # setuptools reads a pyproject.toml in the current directory: build from an empty one
        os.chdir(work)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            extensions = mypycify([str(p) for p in sources], opt_level="3", debug_level="0",
                                  target_dir=str(work / "c"))
            setup(name="apiclab-native", ext_modules=extensions,
                  script_args=["build_ext", "--build-lib", str(out),
                               "--build-temp", str(work / "temp")])
    except BaseException as e:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
        last = [line for line in log.getvalue().splitlines() if "error" in line.lower()]
        detail = last[-1].strip() if last else f"{type(e).__name__}: {e}"
        raise RuntimeError(f"the native build failed: {detail}") from e
    os.chdir(cwd)
    shared = sorted(p.name[: -len(SUFFIX)] for p in out.glob(f"*__mypyc{SUFFIX}"))
    if fingerprints != {m: fingerprint(p) for m, p in zip(MODULES, sources, strict=True)}:
        shutil.rmtree(work, ignore_errors=True)
        raise RuntimeError("a source changed during the native build; run it again")
    manifest = {"python": build_tag(), "sources": fingerprints, "shared": shared,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    old = BUILD_DIR.with_name(f"native-old-{os.getpid()}")
    if BUILD_DIR.exists():
        BUILD_DIR.rename(old)
    out.rename(BUILD_DIR)
    tmp_manifest = MANIFEST.with_suffix(".tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp_manifest.rename(MANIFEST)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    if not quiet:
        print(f"native build: {len(MODULES)} modules compiled into {BUILD_DIR}")
    return BUILD_DIR


def main() -> int:
    start = time.perf_counter()
    try:
        build(quiet=True)
    except RuntimeError as e:
        print(f"apiclab native build: {e}", file=sys.stderr)
        return 1
    print(f"native build: {len(MODULES)} modules compiled with mypyc into "
          f"{BUILD_DIR.relative_to(Path.cwd()) if BUILD_DIR.is_relative_to(Path.cwd()) else BUILD_DIR}"
          f" in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
