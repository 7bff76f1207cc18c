"""Run the ``cnnkeras`` command with one fault injected at a precise point (used by tests/test_faults*.py).

    python tests/faults_inject.py FAULT [FAULT ...] -- train --data digits ...

FAULT is one of

- ``kill-call:DOTTED[:K]``: SIGKILL at the start of the K-th call (default 1) of a function or method,
  e.g. ``cnnkeras.training.callbacks.EpochState.on_epoch_end:1`` (before anything of the first epoch is saved);
- ``kill-replace:NAME[:K]``: SIGKILL just before the K-th rename onto a path named NAME (the new content
  is complete in its hidden temporary, the final name still holds the old one);
- ``kill-batch:E,B`` / ``sigint-batch:E,B``: SIGKILL / SIGINT after batch B of epoch E (0-based), mid-epoch.
- ``slow-call:DOTTED:SECONDS``: sleep before each call (to hold a lock while another process tries).

Kill points are chosen by name, not by timing, so every run of a test injects the same fault.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time


def _die(sig: int = signal.SIGKILL) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), sig)


def _resolve(dotted: str) -> tuple[object, str]:
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1]
    raise SystemExit(f"cannot resolve {dotted}")


def _wrap_call(dotted: str, before) -> None:
    owner, attr = _resolve(dotted)
    original = getattr(owner, attr)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        before(calls[0])
        return original(*args, **kwargs)

    setattr(owner, attr, wrapper)


def _batch_hook(epoch: int, batch: int, sig: int) -> None:
    from cnnkeras.training.callbacks import EpochState

    begin = EpochState.on_epoch_begin

    def on_epoch_begin(self, e, logs=None):
        self._fault_epoch = e
        return begin(self, e, logs)

    def on_train_batch_end(self, b, logs=None):
        if getattr(self, "_fault_epoch", None) == epoch and b == batch:
            _die(sig)

    EpochState.on_epoch_begin = on_epoch_begin
    EpochState.on_train_batch_end = on_train_batch_end


def install(fault: str) -> None:
    """Install one fault (see the module docstring)."""
    kind, _, arg = fault.partition(":")
    if kind == "kill-call":
        dotted, _, k = arg.partition(":")
        nth = int(k or 1)
        _wrap_call(dotted, lambda n: _die() if n == nth else None)
    elif kind == "slow-call":
        dotted, _, seconds = arg.rpartition(":")
        _wrap_call(dotted, lambda n: time.sleep(float(seconds)))
    elif kind == "kill-replace":
        name, _, k = arg.partition(":")
        nth, seen, original = int(k or 1), [0], os.replace

        def replace(src, dst, *args, **kwargs):
            if os.path.basename(os.fspath(dst)) == name:
                seen[0] += 1
                if seen[0] == nth:
                    _die()
            return original(src, dst, *args, **kwargs)

        os.replace = replace
    elif kind in ("kill-batch", "sigint-batch"):
        e, b = (int(v) for v in arg.split(","))
        _batch_hook(e, b, signal.SIGKILL if kind == "kill-batch" else signal.SIGINT)
    else:
        raise SystemExit(f"unknown fault {fault!r}")


def main(argv: list[str]) -> int:
    """``FAULT ... -- COMMAND ARGS``: install the faults, then run the cnnkeras command."""
    split = argv.index("--")
    for fault in argv[:split]:
        install(fault)
    from cnnkeras.main import main as cnnkeras_main

    sys.argv = ["cnnkeras", *argv[split + 1:]]
    return cnnkeras_main(argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
