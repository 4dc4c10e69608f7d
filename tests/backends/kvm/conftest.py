"""Fixtures for tests that need the host's /dev/kvm; they skip with the reason where it is absent."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from apiclab.backends.kvm.system import Kvm


def _kvm_unusable() -> str | None:
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm on this machine (KVM module not loaded or no virtualization)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by this user"
    return None


KVM_SKIP = _kvm_unusable()


@pytest.fixture
def kvm() -> Iterator[Kvm]:
    if KVM_SKIP:
        pytest.skip(KVM_SKIP)
    with Kvm() as k:
        yield k
