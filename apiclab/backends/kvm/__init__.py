"""The real KVM of the host, from pure Python (fcntl-free ioctl(2) through ctypes).

Modules: `ioctls` (numbers and the one ioctl call), `structs` (ctypes layouts), `system` (Kvm),
`vm` (Vm, GuestMemory), `vcpu` (Vcpu), `exits` (VcpuExit), `deadline` (run time-out),
`machine` (the agent's PC), `tracefs` (tracepoint capture), `info` (`apiclab kvm info`),
`deviation` (host vs model), `backend` (KvmBackend).
"""

from apiclab.backends.kvm.backend import KvmBackend

__all__ = ["KvmBackend"]
