"""Filter known, harmless lines that TensorFlow and LiteRT's C++ code writes straight to stderr.

Those lines bypass Python logging and ``TF_CPP_MIN_LOG_LEVEL``: "All log messages before
absl::InitializeLog()...", the oneDNN notice (``port.cc] oneDNN custom operations are on``: printed
twice per process, because two of TensorFlow's shared libraries each carry a copy of that static
initializer; it is not a second process), "Could not find cuda drivers", "failed call to cuInit",
the grappler ``E0000 ... NodeDef mentions attribute use_unbounded_threadpool`` line, the converter's
"fully_quantize: 0, ..." and MLIR location/operation dumps of a failed conversion (the error itself
reaches the user as an exception message), "Created TensorFlow Lite XNNPACK delegate".

Two tools, neither used at library import (a notebook importing cnnkeras keeps its stderr):

* :func:`cli_filter`: used by the ``cnnkeras`` command around a running subcommand. File descriptor
  2 goes into a pipe read by a small child process that passes every other line on at once. The
  child outlives a fatal native abort of the parent, so the abort's message is never lost.
* :func:`filtered_native_stderr`: a block-level filter for library code (fd 2 to a temporary file,
  lines passed on when the block ends); inside :func:`cli_filter` it does nothing.

``CNNKERAS_TF_LOGS=1`` (or the CLI's ``-v``) turns both off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from typing import Iterator

logger = logging.getLogger(__name__)


KNOWN_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|cpu_feature_guard\.cc|To enable the following instructions"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|NodeDef mentions attribute use_unbounded_threadpool"
    r"|^fully_quantize: \d+, inference_type: \d+"
    r"|tf_tfl_flatbuffer_helpers\.cc:\d+\] Ignored "
    r"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$")

# MLIR diagnostics of a failed conversion: location dumps and printed operations, often thousands of lines.
MLIR_DUMP = re.compile(r"^\s*loc\(|^<unknown>:0: note:|see current operation:|^\s*(%[\w#]+ = |\^bb\d|func\.func )")

_active = False  # a cli_filter is running in this process


@contextlib.contextmanager
def filtered_native_stderr(noise: re.Pattern[str] = KNOWN_NOISE) -> Iterator[None]:
    """Capture file descriptor 2 for the block, then write out every line that does not match ``noise``.

    Does nothing inside :func:`cli_filter` (which already filters, line by line) or with
    ``CNNKERAS_TF_LOGS=1``.

    Args:
        noise: Lines to drop (logged at DEBUG instead).

    Yields:
        Nothing; the block runs with stderr captured. Lines are passed on even when the block raises.
    """
    if _active or os.environ.get("CNNKERAS_TF_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters): leave it alone
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if noise.search(line) or MLIR_DUMP.search(line):
                    logger.debug("native stderr: %s", line)
                elif line.strip():
                    print(line, file=sys.stderr)


@contextlib.contextmanager
def cli_filter(enabled: bool = True) -> Iterator[None]:
    """Filter the process's stderr line by line while the block runs (the ``cnnkeras`` command only).

    Args:
        enabled: ``False`` (``-v``) leaves stderr alone, as does ``CNNKERAS_TF_LOGS=1``.

    Yields:
        Nothing.
    """
    global _active
    if not enabled or _active or os.environ.get("CNNKERAS_TF_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__)],
                                 stdin=read_end, stdout=saved, stderr=saved)
    except OSError:  # cannot start the filter: show everything rather than fail the command
        for fd in (read_end, write_end, saved):
            os.close(fd)
        yield
        return
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    # Python's own stderr (logging, tracebacks, warnings) keeps writing to the terminal directly, so it
    # stays in order with stdout; only native writes to file descriptor 2 pass through the filter.
    python_stderr = _direct_python_stderr(saved)
    _active = True
    try:
        yield
    finally:
        _active = False
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        if python_stderr is not None:
            direct, sys.stderr = sys.stderr, python_stderr
            with contextlib.suppress(OSError, ValueError):
                direct.close()
        os.dup2(saved, 2)  # closes our last copy of the pipe's write end: the child reads EOF
        os.close(saved)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=10)


def _direct_python_stderr(fd: int) -> object | None:
    """Point ``sys.stderr`` at a copy of ``fd`` when it is the process's real stderr; return the old one."""
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return None  # replaced already (a test's capture, an IDE): leave it alone
        old = sys.stderr
        sys.stderr = open(os.dup(fd), "w", buffering=1, encoding=old.encoding, errors=old.errors or "strict")
        return old
    except (AttributeError, OSError, ValueError):
        return None


def _pump() -> int:
    """The child of :func:`cli_filter`: stdin lines -> stdout, without the noise; a count of hidden dumps."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the command, not its stderr
    hidden = 0
    out = sys.stdout.buffer
    for raw in sys.stdin.buffer:
        line = raw.decode(errors="replace")
        if KNOWN_NOISE.search(line):
            continue
        if MLIR_DUMP.search(line):
            hidden += 1
            continue
        out.write(raw)
        out.flush()
    if hidden:
        out.write(f"({hidden} converter diagnostic lines hidden; set CNNKERAS_TF_LOGS=1 or pass -v to see "
                  f"them)\n".encode())
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_pump())
