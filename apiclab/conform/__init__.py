"""`apiclab conform`: one suite of guest programs with SDM-derived expectations, run on the model,
real KVM, QEMU and Bochs, and a differential mode that shrinks disagreements to candidate cases."""
