"""The board table (``boards.yaml`` beside this module) and the boards a user names on the command line.

``--board`` takes one of three forms:

* a name from the table, e.g. ``nucleo-l4r5zi`` (case-insensitive; a typo gets a suggestion);
* an inline board, ``CORE[@CLOCK][,ram=SIZE][,flash=SIZE][,name=NAME]``, e.g.
  ``cortex-m4@80MHz,ram=256K,flash=1M`` or ``ethos-u55-128@500MHz,ram=2M,flash=8M``. ``CLOCK`` is ``80MHz``,
  ``80`` (MHz) or ``1GHz``; ``SIZE`` is bytes or a number with ``K``/``KB``/``KiB`` or ``M``/``MB``/``MiB``
  (each kilo = 1024 bytes, mega = 1024 KiB, as MCU datasheets count). ``ram`` and ``flash`` are required;
  the clock defaults to nothing (no latency estimate) when left out;
* a YAML/JSON file: one board (the keys of a table row) or ``boards: [...]``.

Every row is checked: unknown or missing keys, wrong types and non-positive numbers are a :class:`BoardError`
that names the row, the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cnnkeras.errors import UserError

TABLE = Path(__file__).with_name("boards.yaml")
CORES = ("cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "cortex-m85", "xtensa-lx7",
         "ethos-u55", "ethos-u65")
NPU_MACS = {"ethos-u55": (32, 64, 128, 256), "ethos-u65": (256, 512)}
# Vela's system config and memory mode when an inline Ethos-U board does not say (vela.ini's high-end setups).
NPU_DEFAULTS = {"ethos-u55": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
                "ethos-u65": ("Ethos_U65_High_End", "Dedicated_Sram")}
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}
SIZE_HELP = "bytes, or a number with K/KB/KiB or M/MB/MiB (1 K = 1024 bytes), e.g. 256K, 1.5M"


class BoardError(UserError):
    """A board table row, board file or ``--board`` value that cannot be used."""


@dataclass(frozen=True)
class Board:
    """One deployment target.

    Attributes:
        name: Short name used by ``--board``.
        board: The board (and chip) in words.
        vendor: Who makes it.
        core: One of :data:`CORES`.
        clock_mhz: The clock the latency estimate uses (an Ethos-U row: its NPU clock); ``None``: unknown.
        sram_bytes: RAM available to the model (tensor arena + runtime).
        flash_bytes: Flash (or other model memory) available to the model and the runtime's code.
        source: Where the figures come from.
        macs: Ethos-U only: MACs per cycle.
        accelerator_config: Ethos-U only: Vela's ``--accelerator-config`` (e.g. ``ethos-u55-128``).
        system_config: Ethos-U only: Vela's ``--system-config``.
        memory_mode: Ethos-U only: Vela's ``--memory-mode``.
    """

    name: str
    board: str
    vendor: str
    core: str
    clock_mhz: float | None
    sram_bytes: int
    flash_bytes: int
    source: str
    macs: int | None = None
    accelerator_config: str | None = None
    system_config: str | None = None
    memory_mode: str | None = None

    @property
    def is_npu(self) -> bool:
        """An Ethos-U target (Vela compiles for it)."""
        return self.core.startswith("ethos-")

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-ready dict (what ``vela_estimate`` and ``--json`` get)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k == "clock_mhz"}


_REQUIRED = ("name", "core", "sram_bytes", "flash_bytes")
_NPU_KEYS = ("macs", "accelerator_config", "system_config", "memory_mode")
_KEYS = {f.name for f in dataclasses.fields(Board)}


def parse_size(value: Any, what: str = "size") -> int:
    """Bytes from ``262144``, ``"256K"``, ``"256 KiB"``, ``"1.5M"`` (1 K = 1024 bytes).

    Raises:
        BoardError: Not a size, or not positive.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if not match or unit not in _UNITS:
            raise BoardError(f"{what} must be {SIZE_HELP}. Received: {value!r}")
        number = int(float(match.group(1)) * _UNITS[unit])
    if number <= 0:
        raise BoardError(f"{what} must be more than 0 bytes. Received: {value!r}")
    return number


def parse_clock(value: Any, what: str = "clock") -> float:
    """MHz from ``80``, ``"80MHz"``, ``"1GHz"``.

    Raises:
        BoardError: Not a clock, or not positive.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        mhz = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(mhz|ghz)?\s*", str(value).lower())
        if not match:
            raise BoardError(f"{what} must be a frequency such as 80MHz, 80 (MHz) or 1GHz. Received: {value!r}")
        mhz = float(match.group(1)) * (1000 if match.group(2) == "ghz" else 1)
    if not mhz > 0:
        raise BoardError(f"{what} must be more than 0 MHz. Received: {value!r}")
    return mhz


def validate_row(row: Any, where: str) -> Board:
    """Check one table row (or a user's board file) and return its :class:`Board`.

    Args:
        row: The mapping read from YAML/JSON.
        where: Where it came from, for messages (file and row).

    Raises:
        BoardError: Unknown or missing keys, a wrong type, a non-positive number, Ethos-U settings missing.
    """
    if not isinstance(row, dict):
        raise BoardError(f"{where}: a board must be a mapping of keys ({', '.join(sorted(_KEYS))}). Received: {row!r}")
    unknown = sorted(set(row) - _KEYS)
    if unknown:
        hints = {k: difflib.get_close_matches(str(k), _KEYS, 1) for k in unknown}
        said = ", ".join(f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items())
        raise BoardError(f"{where}: unknown key(s) {said}. Known keys: {', '.join(sorted(_KEYS))}.")
    missing = [k for k in _REQUIRED if row.get(k) in (None, "")]
    if missing:
        raise BoardError(f"{where}: missing {', '.join(missing)}. Add them (sizes as {SIZE_HELP}).")
    for key in ("name", "board", "vendor", "source", "accelerator_config", "system_config", "memory_mode"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise BoardError(f"{where}: {key} must be text. Received: {key}={row[key]!r}")
    core = str(row["core"]).lower()
    if core not in CORES:
        hint = difflib.get_close_matches(core, CORES, 1)
        raise BoardError(f"{where}: core {row['core']!r} is not known" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                         + f". Known cores: {', '.join(CORES)}.")
    values = dict(row, core=core, name=str(row["name"]).lower())
    values["sram_bytes"] = parse_size(row["sram_bytes"], f"{where}: sram_bytes")
    values["flash_bytes"] = parse_size(row["flash_bytes"], f"{where}: flash_bytes")
    if row.get("clock_mhz") is not None:
        values["clock_mhz"] = parse_clock(row["clock_mhz"], f"{where}: clock_mhz")
    values.setdefault("clock_mhz", None)
    values.setdefault("board", values["name"])
    values.setdefault("vendor", "")
    values.setdefault("source", "user-defined")
    _check_npu(values, where)
    return Board(**values)


def _check_npu(values: dict, where: str) -> None:
    core = values["core"]
    if core not in NPU_MACS:
        extra = [k for k in _NPU_KEYS if values.get(k) is not None]
        if extra:
            raise BoardError(f"{where}: {', '.join(extra)} apply to Ethos-U cores only (core is {core}). Remove them.")
        return
    macs = values.get("macs")
    if isinstance(macs, bool) or macs not in NPU_MACS[core]:
        raise BoardError(f"{where}: macs must be one of {NPU_MACS[core]} for {core}. Received: macs={macs!r}")
    system, mode = NPU_DEFAULTS[core]
    values.setdefault("accelerator_config", f"{core}-{macs}")
    values.setdefault("system_config", system)
    values.setdefault("memory_mode", mode)
    if values["accelerator_config"] != f"{core}-{macs}":
        raise BoardError(f"{where}: accelerator_config {values['accelerator_config']!r} does not match core {core} "
                         f"with macs={macs}: use {core}-{macs}.")


def _rows(data: Any, where: str) -> list[Board]:
    rows = data.get("boards") if isinstance(data, dict) and "boards" in data else [data]
    if not isinstance(rows, list) or not rows:
        raise BoardError(f"{where}: 'boards' must be a non-empty list of boards.")
    boards = [validate_row(r, f"{where} (board {i + 1}{': ' + str(r.get('name')) if isinstance(r, dict) else ''})")
              for i, r in enumerate(rows)]
    names = [b.name for b in boards]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BoardError(f"{where}: board name(s) used twice: {', '.join(dupes)}. Give each board its own name.")
    return boards


def parse_table(text: str, where: str) -> list[Board]:
    """Boards from the text of a YAML/JSON board table or board file.

    Raises:
        BoardError: Not YAML, or a row that fails :func:`validate_row`.
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BoardError(f"{where}: not valid YAML/JSON ({exc}). Fix the file.") from None
    return _rows(data, where)


@lru_cache(maxsize=1)
def _shipped() -> tuple[Board, ...]:
    return tuple(parse_table(TABLE.read_text(encoding="utf-8"), str(TABLE.name)))


def load_boards() -> dict[str, Board]:
    """The shipped table, ``{name: Board}`` in file order."""
    return {b.name: b for b in _shipped()}


def parse_inline(text: str) -> Board:
    """A board from ``CORE[@CLOCK],ram=SIZE,flash=SIZE[,name=NAME][,macs=N]``.

    Raises:
        BoardError: Unknown core or key, missing ram/flash, a bad size or clock.
    """
    head, *parts = [p.strip() for p in text.split(",")]
    core_text, _, clock = head.partition("@")
    core_text = core_text.lower()
    row: dict[str, Any] = {}
    npu = re.fullmatch(r"(ethos-u5[56])-(\d+)", core_text)
    if npu:
        core_text, row["macs"] = npu.group(1), int(npu.group(2))
    keys = {"ram": "sram_bytes", "sram": "sram_bytes", "flash": "flash_bytes", "name": "name", "macs": "macs"}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key.strip().lower() not in keys:
            raise BoardError(f"--board {text!r}: {part!r} is not KEY=VALUE with KEY one of ram, flash, name, macs. "
                             "Example: cortex-m4@80MHz,ram=256K,flash=1M")
        field_name = keys[key.strip().lower()]
        row[field_name] = int(value) if field_name == "macs" and value.strip().isdigit() else value.strip()
    row.setdefault("name", text)
    row.update(core=core_text, source="inline --board")
    if clock:
        row["clock_mhz"] = clock
    missing = [k for k, f in (("ram", "sram_bytes"), ("flash", "flash_bytes")) if f not in row]
    if missing:
        raise BoardError(f"--board {text!r}: add {' and '.join(k + '=SIZE' for k in missing)} ({SIZE_HELP}). "
                         "Example: cortex-m4@80MHz,ram=256K,flash=1M")
    return validate_row(row, f"--board {text!r}")


def resolve_boards(text: str) -> list[Board]:
    """The boards a ``--board`` value names: a table name, an inline board or a YAML/JSON file.

    Raises:
        BoardError: Unknown name (with the closest names), bad inline board or file.
    """
    value = str(text).strip()
    table = load_boards()
    if value.lower() in table:
        return [table[value.lower()]]
    path = Path(value)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        from cnnkeras.common.safe_load import read_text

        return parse_table(read_text(path, "board file", fix="write one board (the keys of a boards.yaml row) "
                                     "or 'boards: [...]'"), str(path))
    if "@" in value or "," in value or value.lower().split("-")[0] in ("cortex", "xtensa", "ethos"):
        return [parse_inline(value)]
    close = difflib.get_close_matches(value.lower(), list(table), 3, 0.5)
    hint = f"Did you mean {' or '.join(close)}? " if close else ""
    raise BoardError(f"unknown board {value!r}. {hint}Known boards: {', '.join(table)} (`cnnkeras boards`), "
                     "or describe yours: cortex-m4@80MHz,ram=256K,flash=1M, or a YAML file.")


def resolve_all(values: list[str] | tuple[str, ...] | str | None) -> list[Board]:
    """Every board of several ``--board`` values (a name used twice counts once)."""
    if values is None:
        return []
    out: dict[str, Board] = {}
    for value in [values] if isinstance(values, str) else values:
        for board in resolve_boards(value):
            out.setdefault(board.name, board)
    return list(out.values())


def format_table(boards: list[Board]) -> str:
    """``cnnkeras boards``: one line per board."""
    def size(n: int) -> str:
        return f"{n / 1024**2:.4g} MiB" if n >= 1024**2 else f"{n / 1024:.4g} KiB"

    rows = [("name", "core", "clock", "SRAM", "flash", "board")]
    for b in boards:
        core = b.accelerator_config or b.core
        rows.append((b.name, core, f"{b.clock_mhz:g} MHz" if b.clock_mhz else "-", size(b.sram_bytes),
                     size(b.flash_bytes), b.board))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]
    lines.append("Sources: `cnnkeras boards --json`. Your own board: --board cortex-m4@80MHz,ram=256K,flash=1M "
                 "or --board my_board.yaml.")
    return "\n".join(lines)


def boards_json(boards: list[Board]) -> str:
    """``cnnkeras boards --json``."""
    return json.dumps([b.to_dict() for b in boards], indent=2)
