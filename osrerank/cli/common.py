"""What every command shares: consoles, the error boundary, and flags generated from the settings sections.

Every setting's flag, type, choices, help and default come from its one declaration in a section (see
osrerank/config/): a command names the sections (or single settings) it offers, and the flags appear.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin

import click
from pydantic_core import PydanticUndefined
from rich.console import Console
from rich.table import Table

from ..config.sources import Leaf, leaves
from ..errors import OsRerankError
from ..settings import Settings

__all__ = [
    "CONTEXT",
    "console",
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
#: What the commands that deploy or use a deployment offer: every section.
EVERY = ("name", "target", "cluster", "model", "index", "pipeline", "first_stage", "connector", "targets")


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


def _dest(leaf: Leaf) -> str:
    """The keyword a flag's value arrives under: the setting's path, ``__`` between parts."""
    return "__".join(leaf.path)


def _option(leaf: Leaf) -> Decorator:
    flag, info = leaf.flag, leaf.info
    assert flag is not None
    help_text, default = info.description or "", info.default
    if default is PydanticUndefined or default in (None, "", ()) or "[default" in help_text:
        shown = ""
    else:
        shown = f" [default: {','.join(map(str, default)) if isinstance(default, tuple) else default}]"
    if info.annotation is bool:
        name = flag.removeprefix("--")
        return click.option(f"--{name}/--no-{name}", _dest(leaf), default=None, help=help_text + shown)
    return click.option(flag, _dest(leaf), type=_click_type(info.annotation), default=None, help=help_text + shown)


def _offered(selectors: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[Leaf]:
    """The settings a command offers as flags: every one under each selector (a section, a root field or one
    setting, by its dotted path), but those ``exclude`` names."""
    chosen = []
    for leaf in leaves(Settings):
        if (
            leaf.flag
            and leaf.dotted not in exclude
            and any(leaf.dotted == s or leaf.dotted.startswith(s + ".") for s in selectors)
        ):
            chosen.append(leaf)
    return chosen


def settings_options(*selectors: str, exclude: tuple[str, ...] = ()) -> Decorator:
    """Flags for the settings under ``selectors`` (plus --config), but those ``exclude`` names (a command that
    takes the flag in a form of its own); unset flags fall through to OSRERANK_* variables and the config file."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        options = [click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML settings file.")]
        options += [_option(leaf) for leaf in _offered(selectors, exclude)]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def resolve_settings(kwargs: dict[str, Any], *, from_record: bool = False) -> Settings:
    """Pop the settings flags out of a command's kwargs (named by their paths) and resolve the settings; with
    ``from_record`` (the commands that act on a setup), starting from what setup recorded for the pipeline."""
    config_file = kwargs.pop("config_file", None)
    paths = {_dest(leaf): leaf.dotted for leaf in leaves(Settings)}
    flags = {paths[k]: kwargs.pop(k) for k in list(kwargs) if k in paths}
    return Settings.resolve(flags, config_file=config_file, from_record=from_record)


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
