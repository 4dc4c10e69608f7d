"""`apiclab diagnose`: read the evidence of a user's own VM and say why each pending vector is or
is not deliverable, with the local-APIC rules of `apiclab.arch`, and which known KVM bugs it looks
like (`apiclab.explore.catalogue`).

One parser per evidence format turns the input into `Evidence` (evidence.py); `verdicts` judges it;
`signatures` matches known bugs; `render` prints text or JSON.
"""
