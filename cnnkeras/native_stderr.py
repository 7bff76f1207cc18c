"""Filter known, harmless lines that TensorFlow and LiteRT's C++ code writes straight to stderr.

Those lines ("All log messages before absl::InitializeLog()...", "Could not find cuda drivers",
"failed call to cuInit" on a machine without a GPU, the converter's "fully_quantize: 0, ...", "Created
TensorFlow Lite XNNPACK delegate") bypass Python logging and ``TF_CPP_MIN_LOG_LEVEL``. While a block
runs, file descriptor 2 goes to a temporary file; afterwards every line is passed on to stderr except
the known noise, which is logged at DEBUG (seen only where logging is configured by then: the CLI
imports TensorFlow before it reads ``-v``). ``CNNKERAS_TF_LOGS=1`` turns the filter off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from typing import Iterator

logger = logging.getLogger(__name__)

KNOWN_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|cpu_feature_guard\.cc|To enable the following instructions"
    r"|^fully_quantize: \d+, inference_type: \d+"
    r"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$")


@contextlib.contextmanager
def filtered_native_stderr(noise: re.Pattern[str] = KNOWN_NOISE) -> Iterator[None]:
    """Capture file descriptor 2 for the block, then write out every line that does not match ``noise``.

    Args:
        noise: Lines to drop (logged at DEBUG instead).

    Yields:
        Nothing; the block runs with stderr captured. Lines are passed on even when the block raises.
    """
    if os.environ.get("CNNKERAS_TF_LOGS") == "1":
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
                if noise.search(line):
                    logger.debug("native stderr: %s", line)
                elif line.strip():
                    print(line, file=sys.stderr)
