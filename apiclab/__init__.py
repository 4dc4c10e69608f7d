"""apiclab: an executable laboratory for x86 interrupt virtualization."""

from apiclab import native as _native

_native.activate()  # the compiled model, when a current build of it exists (`make native`)
