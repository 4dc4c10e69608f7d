"""Executors: everything that runs a case and observes it, behind one protocol, compared one way.

- `protocol`: the `Executor` protocol (`name`, `can_run(case) -> reason | None`, `run(case)`).
- `case`, `expect`: one notion of a case (guest program + initial APIC image + expectation).
- `compare`: `first_difference`, the one comparison every comparing command uses.
- `model`, `backends`, `bochs_vmx`: the model, KVM, QEMU, Bochs and Bochs-VMX as executors.

Importing this package imports none of them (`compare` is used from every layer, down to the
backends, and must stay cheap and free of upward imports).
"""
