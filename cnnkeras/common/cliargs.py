"""Command-line flags derived from a config dataclass, so a new option cannot be forgotten.

Every field of the dataclass becomes a flag ``--field-name``; its help text is the field's
``metadata["help"]`` or, failing that, its entry in the class docstring's ``Attributes:`` section;
its type comes from the annotation (``int``, ``float``, ``str``, ``bool``; anything else is passed
on as text). A :class:`Flag` (in ``metadata["cli"]`` or in the CLI module's table) adjusts what the
annotation cannot say: a flag name, choices, a metavar, a text-to-value conversion, a group, or
``skip=True`` for options that have no flag. A field added later therefore shows up in ``--help``
and reaches the library call with nothing else to edit::

    stream: bool = field(default=False, metadata={"help": "read images from disk batch by batch"})
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

_UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()


@dataclasses.dataclass(frozen=True)
class Flag:
    """How one dataclass field looks on the command line (every attribute optional).

    Attributes:
        flag: The option string (default ``--field-name``).
        type: argparse ``type`` (default: from the annotation).
        choices: Allowed values.
        metavar: Placeholder shown in help.
        help: Help text (default: field metadata or the class docstring).
        nargs: argparse ``nargs`` (e.g. ``"+"`` for a list).
        action: argparse ``action`` for a non-switch flag (e.g. ``"extend"``: a repeatable list flag).
        convert: Turns the parsed text into the field's value (e.g. JSON); may raise a user error.
        group: Title of the argument group (default: the main options).
        exclusive: Fields with the same name here are mutually exclusive.
        skip: No flag for this field.
        default: The default shown when the CLI does not default to ``None`` (default: the field's).
    """

    flag: str | None = None
    type: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    help: str | None = None
    nargs: str | None = None
    action: str | None = None
    convert: Callable[[Any], Any] | None = None
    group: str | None = None
    exclusive: str | None = None
    skip: bool = False
    default: Any = _UNSET


_SCALARS = {"int": int, "float": float, "str": str}


def docstring_attributes(cls: type) -> dict[str, str]:
    """Field descriptions from a Google-style ``Attributes:`` section (continuation lines joined).

    Args:
        cls: A documented class.

    Returns:
        ``{name: description}``.
    """
    doc = cls.__doc__ or ""
    match = re.search(r"^(\s*)Attributes:\s*\n(.*?)(?=^\1\S|\Z)", doc, re.S | re.M)
    if not match:
        return {}
    out: dict[str, str] = {}
    name = None
    indent = None
    for line in match.group(2).splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        head = re.match(r"\s*(\w+)(?: \(.*?\))?: (.*)", line)
        if head and (indent is None or depth <= indent):
            indent, name = depth, head.group(1)
            out[name] = head.group(2).strip()
        elif name:
            out[name] += " " + line.strip()
    return out


def _base_type(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [p.strip() for p in text.split("|") if p.strip() not in ("None", "")]
    return parts[0] if len(parts) == 1 else "Any"


def _plain(text: str) -> str:
    """Docstring text for argparse: no reST markup, ``%`` escaped."""
    return re.sub(r"``([^`]*)``|:\w+:`~?([^`]*)`", lambda m: m.group(1) or m.group(2), text).replace("%", "%%")


def fields_with_flags(cls: type, table: Mapping[str, Flag] | None = None) -> list[tuple[dataclasses.Field, Flag]]:
    """The fields of ``cls`` that get a flag, each with its :class:`Flag` (metadata first, then ``table``).

    Args:
        cls: A dataclass.
        table: The CLI module's adjustments by field name.

    Returns:
        ``[(field, flag), ...]`` in field order, skipped fields left out.
    """
    table = table or {}
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("cli") or table.get(f.name) or Flag()
        if not spec.skip:
            out.append((f, spec))
    return out


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, table: Mapping[str, Flag] | None = None, *,
                            defaults_none: bool = False, only: Iterable[str] | None = None) -> list[str]:
    """Add one flag per field of ``cls`` to ``parser``.

    Args:
        parser: The subcommand's parser.
        cls: The config dataclass.
        table: Adjustments by field name (a field's own ``metadata["cli"]`` wins).
        defaults_none: Every flag defaults to ``None`` (so the caller can tell typed options from
            omitted ones, and the dataclass fills the rest); otherwise the field defaults are used.
        only: Restrict to these field names.

    Returns:
        The names of the fields that got a flag (the ``dest`` of each).
    """
    docs = docstring_attributes(cls)
    groups: dict[str, Any] = {}
    names = []
    for f, spec in fields_with_flags(cls, table):
        if only is not None and f.name not in only:
            continue
        default = spec.default if spec.default is not _UNSET else _field_default(f)
        kind = _base_type(f.type)
        text = spec.help or f.metadata.get("help") or docs.get(f.name) or ""
        kwargs: dict[str, Any] = {"dest": f.name, "default": None if defaults_none else default}
        if kind == "bool" and spec.type is None:
            # --x for False-default switches; --x/--no-x where the default is on or "unset: automatic".
            tri_state = default is True or (default is None and "None" in str(f.type))
            kwargs["action"] = argparse.BooleanOptionalAction if tri_state else "store_const"
            if not tri_state:
                kwargs["const"] = True
        else:
            kwargs["type"] = spec.type or _SCALARS.get(kind, str)
            for key in ("choices", "metavar", "nargs", "action"):
                if getattr(spec, key) is not None:
                    kwargs[key] = getattr(spec, key)
            if isinstance(default, (int, float, str)) and not isinstance(default, bool) and "default" not in text:
                text += f" (default {default})"
        kwargs["help"] = _plain(text)
        target = parser
        if spec.exclusive:
            key = "exclusive:" + spec.exclusive
            if key not in groups:
                groups[key] = parser.add_mutually_exclusive_group()
            target = groups[key]
        elif spec.group:
            if spec.group not in groups:
                groups[spec.group] = parser.add_argument_group(spec.group)
            target = groups[spec.group]
        target.add_argument(spec.flag or "--" + f.name.replace("_", "-"), **kwargs)
        names.append(f.name)
    return names


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def collect(args: argparse.Namespace, cls: type, table: Mapping[str, Flag] | None = None,
            names: Iterable[str] | None = None) -> tuple[dict[str, Any], set[str]]:
    """The field values the user typed, converted, and the names of the typed fields.

    Args:
        args: Parsed arguments (from a parser built with :func:`add_dataclass_arguments`).
        cls: The config dataclass.
        table: The same adjustments table.
        names: Restrict to these fields (default: every flagged field present in ``args``).

    Returns:
        ``(values, given)``: ``values`` holds each non-``None`` value after its ``convert``
        (a conversion may return ``None``: the field keeps its default); ``given`` names every field
        whose flag was typed.
    """
    values: dict[str, Any] = {}
    given: set[str] = set()
    for f, spec in fields_with_flags(cls, table):
        if (names is not None and f.name not in names) or not hasattr(args, f.name):
            continue
        raw = getattr(args, f.name)
        if raw is None:
            continue
        given.add(f.name)
        value = spec.convert(raw) if spec.convert else raw
        if value is not None:
            values[f.name] = value
    return values, given
