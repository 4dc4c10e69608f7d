"""The seed's state on the host's real KVM: the image `kvm reproduce --save-lapic` writes, and a
kvm trace of an apiclab KVM run replayed to the registers KVM_GET_LAPIC reads back."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from apiclab.cli.main import main
from apiclab.diagnose import lapic_image, trace_evidence
from apiclab.diagnose.verdicts import judge

KVM_SKIP = None if os.access("/dev/kvm", os.R_OK | os.W_OK) else "no usable /dev/kvm here"
ROOT_SKIP = None if os.geteuid() == 0 else "tracefs needs root"
FIXTURE_SCRIPT = Path(__file__).parent / "fixtures" / "make_fixtures.py"
needs_kvm = pytest.mark.skipif(KVM_SKIP is not None, reason=KVM_SKIP or "")


def _fixture_script() -> Any:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURE_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_kvm
def test_reproduce_saves_images_and_diagnose_names_e1_in_the_stale_isr_one(
        tmp_path: Path, diagnose: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["kvm", "reproduce", "--wait-ms", "20", "--json", "--save-lapic", str(tmp_path)])
    capsys.readouterr()
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clean-reset.lapic", "pending-irr.lapic", "stale-isr.lapic"]
    run = diagnose(str(tmp_path / "stale-isr.lapic"), "--json")
    assert run.code == 1
    [cpu] = run.json()["cpus"]
    assert cpu["isr"] == [0xE1] and cpu["ppr"] == 0xE0
    held = [p for p in cpu["pending"] if p["vector"] == 0xD1]
    assert held and held[0]["blocking_vector"] == 0xE1


def test_save_lapic_into_a_missing_directory_is_one_line(diagnose: Any,
                                                         capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    code = main(["kvm", "reproduce", "--save-lapic", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1


@needs_kvm
@pytest.mark.skipif(ROOT_SKIP is not None, reason=ROOT_SKIP or "")
def test_a_tracefs_trace_of_a_kvm_run_replays_to_the_registers_kvm_reads_back() -> None:
    text, image = _fixture_script().traced_run()
    replayed = trace_evidence.parse(text, "live trace")
    read_back = lapic_image.parse_images([("KVM_GET_LAPIC", image)])
    [got], [want] = replayed.cpus, read_back.cpus
    assert (got.irr, got.isr, got.tpr) == (want.irr, want.isr, want.tpr)
    [vr], [vw] = judge(replayed), judge(read_back)
    assert [(p.vector, p.deliverable, p.reason, p.blocking_vector) for p in vr.pending] == \
        [(p.vector, p.deliverable, p.reason, p.blocking_vector) for p in vw.pending]


@needs_kvm
@pytest.mark.skipif(shutil.which("trace-cmd") is None, reason="trace-cmd not installed (Debian "
                    "package trace-cmd)")
@pytest.mark.skipif(ROOT_SKIP is not None, reason=ROOT_SKIP or "")
def test_trace_cmd_record_of_a_kvm_run_replays_to_the_registers_kvm_reads_back(
        tmp_path: Path) -> None:
    out = tmp_path / "trace.dat"
    image = tmp_path / "end.lapic"
    run = (f"from apiclab.backends.kvm.backend import KvmBackend\n"
           f"from apiclab.diagnose.stuck_guest import stuck_program\n"
           f"r = KvmBackend().run(stuck_program(wait_ticks=100_000_000), timeout_s=10)\n"
           f"open({str(image)!r}, 'wb').write(r.lapic.encode())\n")
    rec = subprocess.run(["trace-cmd", "record", "-q", "-F", "-e", "kvm", "-o", str(out),
                          sys.executable, "-c", run],
                         capture_output=True, text=True, timeout=120, check=False)
    if rec.returncode != 0 or not image.exists():
        pytest.skip(f"trace-cmd record cannot trace here: {rec.stderr.strip()[:160]}")
    report = subprocess.run(["trace-cmd", "report", "-i", str(out)], capture_output=True,
                            text=True, timeout=120, check=True).stdout
    replayed = trace_evidence.parse(report, "trace-cmd report")
    read_back = lapic_image.parse_images([("KVM_GET_LAPIC", image.read_bytes())])
    assert replayed.cpus[0].irr == read_back.cpus[0].irr
    assert replayed.cpus[0].isr == read_back.cpus[0].isr
