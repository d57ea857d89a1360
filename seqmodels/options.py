"""Options declared once: a config dataclass field carries its type, default and help text.

A kind's user-facing options class is flat (what ``seqflow train KIND`` takes as flags, what its Prefect
flow takes as parameters, what ``--config`` files hold). Its fields come from the component configs
(:func:`options_from`), with the kind's defaults, or are declared with :func:`option`; the CLI, the
flow signature and the UI form are generated from them, never written again.

Field metadata: ``help``; optional ``flag`` (the CLI spelling when it is not ``--name-with-dashes``),
``group`` (the ``--help`` section), ``parse`` (a function from the flag's text to the value),
``metavar``, ``cli_required`` (required on the command line although the flow has a default).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

MISSING = dataclasses.MISSING


def option(default: Any = MISSING, help: str = "", **metadata: Any) -> dataclasses.Field:
    """A dataclass field declaring one option: its default, its help text and CLI hints (see the module doc)."""
    meta = {"help": help, **metadata}
    return dataclasses.field(metadata=meta) if default is MISSING else dataclasses.field(default=default, metadata=meta)


def options_from(config: Any, names: dict[str, str] | list[str], group: str, **overrides: dict) -> list[tuple]:
    """Option field specs ``(name, type, field)`` taken from the fields of a config instance ``config``.

    ``names`` maps option name -> config field name (a list when they are the same); the default is that
    field's value in ``config`` (so a kind's own defaults show), type and help come from the config class.
    ``overrides`` (by option name) replace metadata entries, e.g. a kind-specific help text.
    """
    names = dict(zip(names, names)) if isinstance(names, list) else names
    hints, declared = get_type_hints(type(config)), {f.name: f for f in dataclasses.fields(config)}
    specs = []
    for option_name, field_name in names.items():
        meta = {"group": group, **declared[field_name].metadata, **overrides.get(option_name, {})}
        specs.append((option_name, hints[field_name], option(getattr(config, field_name), **meta)))
    return specs


def options_class(name: str, *parts: list[tuple], doc: str = "") -> type:
    """A keyword-only dataclass of the option field specs ``parts``, in order."""
    cls = dataclasses.make_dataclass(name, [spec for part in parts for spec in part], kw_only=True)
    cls.__doc__ = doc or cls.__doc__
    return cls


def option_types(cls: type) -> dict[str, Any]:
    """Each option's resolved type (``X | None`` kept as written)."""
    return get_type_hints(cls)


def base_type(annotation: Any) -> tuple[Any, bool]:
    """``(X, optional)`` for ``X | None`` / ``Optional[X]``, else ``(annotation, False)``."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def choices_of(annotation: Any) -> tuple | None:
    """The allowed values of a ``Literal[...]`` option (after removing ``| None``), else None."""
    base, _ = base_type(annotation)
    return get_args(base) if get_origin(base) is Literal else None


def required_options(cls: type) -> list[str]:
    """Options without a default, or required on the command line (``cli_required``)."""
    return [f.name for f in dataclasses.fields(cls)
            if f.metadata.get("cli_required") or (f.default is MISSING and f.default_factory is MISSING)]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a YAML, JSON or TOML file (by suffix): a flat mapping of option names to values.

    Names may be written with dashes or underscores (``text-col`` or ``text_col``).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(text)
    elif suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
    elif suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        raise ValueError(f"{path}: a config file must end in .yaml, .yml, .json or .toml")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds a mapping of option names to values, not {type(data).__name__}")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def check_option_names(cls: type, values: dict[str, Any], source: str) -> None:
    """Refuse names that are not options of ``cls``, naming them and the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown options {unknown}; known: {sorted(known)}")


def options_dict(options: Any) -> dict[str, Any]:
    """The options as a JSON-ready dict (what ``--print-config`` prints and ``--config`` reads back)."""
    return json.loads(json.dumps(dataclasses.asdict(options), default=str))
