"""The bare-metal agent: one 64 KiB ROM that interprets a guest `Program` on any x86 backend.

`agent.S` (GNU as) and `agent.ld` are the sources; `agent.bin` is the committed build, so running
guests needs no binutils; `build.py` rebuilds it and a test checks the two cannot drift.
`image.py` embeds a program into the ROM; `log.py` turns what the agent reports into a `Trace`.
"""
