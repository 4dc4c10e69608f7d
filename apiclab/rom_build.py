"""Building a bare-metal ROM (GNU as + ld + objcopy) from sources kept beside it in the package,
and reading where its symbols were linked (pyelftools).

Both ROMs of apiclab — the guest agent and the Bochs VMX probe — ship their built binary as
package data, so users need no binutils; a flat binary has no timestamps, so a rebuild equals the
committed bytes, and each has a test that checks exactly that. This module is the one recipe.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("as", "ld", "objcopy")


class BuildError(RuntimeError):
    """binutils missing or failing; the message says which tool and why."""


def missing_tools() -> list[str]:
    """The binutils programs that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{argv[0]} failed: {proc.stderr.strip()}")


@dataclass(frozen=True)
class Rom:
    """`NAME.S` and `NAME.ld` in `directory` build `NAME.bin` there (its `.rom` section)."""

    name: str
    directory: Path

    @property
    def source(self) -> Path:
        return self.directory / f"{self.name}.S"

    @property
    def linker_script(self) -> Path:
        return self.directory / f"{self.name}.ld"

    @property
    def binary(self) -> Path:
        return self.directory / f"{self.name}.bin"

    def build(self, workdir: Path | None = None) -> bytes:
        """Assemble and link; return the ROM image (intermediate files go to `workdir`)."""
        if missing := missing_tools():
            raise BuildError(f"binutils not found: {', '.join(missing)} (install package binutils)")
        with tempfile.TemporaryDirectory(prefix=f"apiclab-{self.name}-build-") as tmp:
            work = workdir or Path(tmp)
            obj, elf, out = (work / f"{self.name}{ext}" for ext in (".o", ".elf", ".bin"))
            _run(["as", "--32", "-o", str(obj), str(self.source)])
            _run(["ld", "-m", "elf_i386", "--no-warn-rwx-segments", "-T",
                  str(self.linker_script), "-o", str(elf), str(obj)])
            _run(["objcopy", "-O", "binary", "-j", ".rom", str(elf), str(out)])
            return out.read_bytes()

    def symbols(self, workdir: Path) -> dict[str, int]:
        """The defined symbols of the linked ROM (after `build(workdir)`), local and global, as
        linked addresses: what binutils' `nm` lists, read from the ELF symbol table itself."""
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        table: dict[str, int] = {}
        with open(workdir / f"{self.name}.elf", "rb") as f:
            symtab = ELFFile(f).get_section_by_name(".symtab")
            if not isinstance(symtab, SymbolTableSection):
                raise BuildError(f"{self.name}.elf has no symbol table")
            for symbol in symtab.iter_symbols():
                # nm leaves out section and file symbols and lists undefined ones without an
                # address
                if (symbol.name and symbol["st_shndx"] != "SHN_UNDEF"
                        and symbol["st_info"]["type"] not in ("STT_SECTION", "STT_FILE")):
                    table[symbol.name] = symbol["st_value"]
        return table

    def main(self, argv: list[str] | None = None) -> int:
        """`python -m ...build [--check]`: rewrite the committed binary, or compare with it."""
        parser = argparse.ArgumentParser(description=f"Rebuild {self.binary.name} from its sources.")
        parser.add_argument("--check", action="store_true", help="compare, do not write")
        args = parser.parse_args(argv)
        try:
            rom = self.build()
        except BuildError as e:
            print(f"build: {e}", file=sys.stderr)
            return 2
        if args.check:
            same = self.binary.exists() and self.binary.read_bytes() == rom
            name = self.binary.name
            print(f"{name} matches its sources" if same else f"{name} differs from its sources")
            return 0 if same else 1
        self.binary.write_bytes(rom)
        print(f"wrote {self.binary} ({len(rom)} bytes)")
        return 0
