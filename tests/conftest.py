"""The suite runs the model as Python (tests patch module globals, which compiled modules do not
see); tests/test_native.py runs the compiled build in child processes and compares. Set
APICLAB_NATIVE=1 to run the suite on the compiled modules instead."""

import os

os.environ.setdefault("APICLAB_NATIVE", "0")
