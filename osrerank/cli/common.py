"""What every command shares: consoles, the error boundary, and flags generated from Settings.

A Settings field offered on the command line says so in its metadata (its group, maybe its flag),
so flag names, types, choices, help and defaults all come from the one definition in config.py.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

import click
from rich.console import Console
from rich.table import Table

from ..config import Settings, flag_of
from ..errors import OsRerankError

__all__ = [
    "CONTEXT",
    "console",
    "dataclass_options",
    "friendly_errors",
    "out",
    "print_hits",
    "print_steps",
    "progress",
    "resolve_settings",
    "settings_options",
]

console = Console(stderr=True)
out = Console()
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print OsRerankError as one line (no stack trace) and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OsRerankError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def progress(message: str) -> None:
    console.print(f"[dim]•[/dim] {message}", highlight=False)


def _click_type(annotation: Any) -> Any:
    """The click type for a field annotation (Optional stripped; Literal values become choices)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if get_origin(annotation) is Literal:
        return click.Choice([str(a) for a in get_args(annotation)])
    return {int: int, float: float}.get(annotation, str)


def _option(flag: str, dest: str, annotation: Any, help_text: str, default: Any) -> Decorator:
    shown = f" [default: {default}]" if default not in (None, "", ()) and "[default" not in help_text else ""
    if annotation is bool:
        name = flag.removeprefix("--")
        return click.option(f"--{name}/--no-{name}", dest, default=None, help=help_text + shown)
    if isinstance(default, tuple):
        default = ",".join(default)
        shown = f" [default: {default}]"
    return click.option(flag, dest, type=_click_type(annotation), default=None, help=help_text + shown)


def settings_options(*groups: str) -> Decorator:
    """Flags for the Settings fields of ``groups`` (plus --config); unset flags fall through to
    OSRERANK_* variables and the config file."""
    hints = typing.get_type_hints(Settings)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        options = [click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML settings file.")]
        for name, info in Settings.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            flag = flag_of(name)
            if flag and extra.get("group") in groups:
                options.append(_option(flag, name, hints[name], info.description or "", info.default))
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def dataclass_options(cls: Any, *, skip: tuple[str, ...] = (), required: tuple[str, ...] = ()) -> Decorator:
    """Flags for a dataclass's fields (help in each field's metadata), e.g. the stand-in's options."""
    hints = typing.get_type_hints(cls)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            help_text = f.metadata.get("help", "")
            default = None if f.default is dataclasses.MISSING else f.default
            flag = "--" + f.name.replace("_", "-")
            if hints[f.name] is bool:
                name = flag.removeprefix("--")
                option = click.option(f"--{name}/--no-{name}", f.name, default=default, help=help_text)
            else:
                shown = f" [default: {default}]" if default is not None else ""
                option = click.option(
                    flag, f.name, type=_click_type(hints[f.name]), default=default, required=f.name in required,
                    help=help_text + shown, envvar=f"OSRERANK_{f.name.upper()}" if f.name in required else None,
                )  # fmt: skip
            fn = option(fn)
        return fn

    return decorate


def resolve_settings(kwargs: dict[str, Any]) -> Settings:
    """Pop the settings flags out of a command's kwargs (they are named like Settings fields)."""
    config_file = kwargs.pop("config_file", None)
    values = {k: kwargs.pop(k) for k in list(kwargs) if k in Settings.model_fields}
    return Settings.resolve(values, config_file=config_file)


def print_steps(title: str, steps: dict[str, Any]) -> None:
    table = Table(title=title, show_header=True)
    for col in ("step", "action", "id"):
        table.add_column(col)
    for step, found in steps.items():
        colour = {"created": "green", "reused": "cyan", "replaced": "yellow", "updated": "yellow"}[found.action]
        table.add_row(step, f"[{colour}]{found.action}[/{colour}]", found.id)
    out.print(table)


def print_hits(result: Any, fields: tuple[str, ...], width: int = 90) -> None:
    if not result.hits:
        out.print("no hits: the first stage found nothing for this query in the index")
        return
    table = Table(show_header=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("id")
    table.add_column(" + ".join(fields))
    for rank, hit in enumerate(result.hits, 1):
        text = hit.text(fields)
        table.add_row(str(rank), f"{hit.score:.8g}", hit.id, text if len(text) <= width else text[: width - 1] + "…")
    out.print(table)
