"""Build and run a micro package as firmware: host, and Cortex-M under QEMU, against a real TFLM tree.

The package's own build file (``files/Makefile``, copied into every micro package with the start-up code
and linker scripts of the emulated boards) compiles ``main.cc`` with the TFLM sources directly: no
download and no Python at build time, unlike TFLM's own Makefile, which fetches third-party code and runs
Python scripts while it parses. This package drives that same build file (:mod:`.build`), finds or
unpacks the TFLM tree (:mod:`.tree`), counts the instructions of one inference under QEMU with a small
TCG plugin (:mod:`.emulate`), and turns it all into report rows (:mod:`.check`).
"""

from __future__ import annotations

from pathlib import Path

FILES = Path(__file__).resolve().with_name("files")
PACKAGE_FILES = ("Makefile", "cortex_m/startup.c", "cortex_m/sections.ld", "cortex_m/mps2.ld",
                 "cortex_m/mps2_an505.ld", "cortex_m/mps3_an547.ld")
"""What every micro package ships to build itself (paths relative to the package and to :data:`FILES`)."""


def package_files() -> dict[str, str]:
    """The build file, start-up code and linker scripts a micro package ships, by relative path."""
    return {name: (FILES / name).read_text() for name in PACKAGE_FILES}
