"""Where settings come from, in one order for every command and entry point (highest first):

    1. flags (and keyword arguments): ``--window 50``
    2. ``OSRERANK_*`` variables named by the setting's path: ``OSRERANK_PIPELINE__WINDOW=50``
       (``__`` between parts, as pydantic-settings' nested delimiter; ``OSRERANK_NAME`` for a root field)
    3. a TOML file (``--config``, or ``$OSRERANK_CONFIG``), tables by section: ``[pipeline] window = 50``
    4. what ``osrerank setup`` recorded for the pipeline a command acts on (later commands start from it)
    5. the defaults the sections declare

Nothing is guessed: an ``OSRERANK_*`` variable that is neither a settings path nor a listed process variable
(environment.py), or a TOML key that is no setting, is refused with the closest known name, as a mistyped
flag is. A validation problem names the value (unless secret), its flag, variable and TOML key.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from ..errors import ConfigError
from .environment import PREFIX, VARIABLES
from .section import flag_of

__all__ = ["Leaf", "deep_merge", "leaves", "normalized", "resolve", "secret_free", "validated"]


@dataclass(frozen=True)
class Leaf:
    """One setting: its path from the root (``("pipeline", "window")``), flag, annotation and field info."""

    path: tuple[str, ...]
    info: Any

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def variable(self) -> str:
        return PREFIX + "__".join(self.path).upper()

    @property
    def flag(self) -> str | None:
        return flag_of(self.info, self.path[-1])

    @property
    def secret(self) -> bool:
        return "SecretStr" in str(self.info.annotation)

    def names(self) -> str:
        """How a user sets it: flag, variable, TOML key."""
        return ", ".join(
            [*([self.flag] if self.flag else []), f"variable {self.variable}", f"config key {self.dotted}"]
        )


def _section(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every setting of ``model``, sections walked depth first in declaration order."""
    for name, info in model.model_fields.items():
        inner = _section(info.annotation)
        if inner is not None:
            yield from leaves(inner, (*prefix, name))
        else:
            yield Leaf((*prefix, name), info)


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section."""
    merged: dict[str, Any] = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        merged[key] = deep_merge(below, value) if isinstance(value, Mapping) and isinstance(below, Mapping) else value
    return merged


def normalized(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every section given as a plain string spelled out as its shorthand field
    (``model = "DIR"`` is ``model.path``), so that layers merge field by field."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        info = model.model_fields.get(key)
        inner = _section(info.annotation) if info is not None else None
        if inner is not None and isinstance(value, str) and getattr(inner, "shorthand", None):
            value = {inner.shorthand: value}  # type: ignore[misc]
        if inner is not None and isinstance(value, Mapping):
            value = normalized(inner, value)
        out[key] = value
    return out


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        out = {part: out}
    return out


def _closest(word: str, known: list[str]) -> str:
    match = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _from_env(model: type[BaseModel], env: Mapping[str, str]) -> dict[str, Any]:
    by_variable = {leaf.variable: leaf for leaf in leaves(model)}
    values: dict[str, Any] = {}
    for name, value in sorted(env.items()):
        if not name.startswith(PREFIX) or name in VARIABLES or value == "":
            continue
        leaf = by_variable.get(name)
        if leaf is None:
            raise ConfigError(f"unknown variable {name}{_suggest_variable(name, model)} ({_VARIABLE_RULE})")
        values = deep_merge(values, _nest(leaf.path, value))
    return values


_VARIABLE_RULE = "a setting's variable is OSRERANK_ and its path with __ between parts, e.g. OSRERANK_PIPELINE__WINDOW"


def _suggest_variable(name: str, model: type[BaseModel]) -> str:
    """The variable meant: one named like a setting's flag or field (the flat names of earlier versions,
    OSRERANK_WINDOW for OSRERANK_PIPELINE__WINDOW), else the closest known name."""
    meant = _flat(name.removeprefix(PREFIX).lower(), model)
    if meant is not None:
        return f"; did you mean {meant.variable}?"
    return _closest(name, [leaf.variable for leaf in leaves(model)] + list(VARIABLES))


def _flat(word: str, model: type[BaseModel]) -> Leaf | None:
    """The setting a flat name of earlier versions meant (``window``: ``pipeline.window``): the one whose flag
    it spells, else the only one of that field name."""
    every = list(leaves(model))
    for leaf in every:
        if leaf.flag == "--" + word.replace("_", "-"):
            return leaf
    same = [leaf for leaf in every if leaf.path[-1] == word]
    return same[0] if len(same) == 1 else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return data.get("osrerank", data)


def _check_keys(model: type[BaseModel], data: Mapping[str, Any], where: str, prefix: tuple[str, ...] = ()) -> None:
    """Refuse keys that are no setting, naming the closest one."""
    for key, value in data.items():
        info = model.model_fields.get(key)
        dotted = ".".join((*prefix, key))
        if info is None:
            known = [leaf.dotted for leaf in leaves(model, prefix)] + [
                ".".join((*prefix, k)) for k in model.model_fields
            ]
            meant = None if prefix else _flat(key, model)  # a flat key of earlier versions' files
            hint = f"; did you mean {meant.dotted}?" if meant else _closest(dotted, known)
            raise ConfigError(f"unknown setting {dotted} in {where}{hint}")
        inner = _section(info.annotation)
        if inner is not None and isinstance(value, Mapping):
            _check_keys(inner, value, where, (*prefix, key))


def _problem(model: type[BaseModel], error: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """One validation problem, with the flag, variable and TOML key of its setting, and its value unless secret."""
    path = (*prefix, *(str(p) for p in error["loc"]))
    if error["type"] == "extra_forbidden":  # a key no section has (Settings.updated, a section built in code)
        return f"unknown setting {'.'.join(path)}"
    leaf = next((leaf for leaf in leaves(model, prefix) if leaf.path == path[: len(leaf.path)]), None)
    message = str(error["msg"]).removeprefix("Value error, ")
    if leaf is None:  # a rule over several settings of a section: its message names their flags
        return message
    value = "" if leaf.secret else f" = {error.get('input')!r}"
    return f"{leaf.dotted}{value}: {message} (set with {leaf.names()})"


def validated(model: type[BaseModel], values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Any:
    """``model(**values)``, a refusal turned into one ConfigError naming every bad setting; ``prefix``: the path
    of ``model`` when it is a section (``("model",)``), so the names given are the root's."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError("invalid setting: " + "; ".join(_problem(model, e, prefix) for e in exc.errors())) from None


def resolve(
    model: type[BaseModel],
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str],
    config_file: str | Path | None = None,
    record: Callable[[str | None], Mapping[str, Any] | None] | None = None,
) -> Any:
    """The settings from every source, in the order of this module's docstring. ``flags`` maps dotted paths
    (``pipeline.window``) to values; ``None`` means "not given", so unset flags fall through. ``record(name)``
    gives what setup recorded for the pipeline the other sources name (None: the latest setup's)."""
    merged: dict[str, Any] = {}
    path = config_file or env.get(f"{PREFIX}CONFIG")
    if path:
        from_file = _read_toml(Path(path))
        _check_keys(model, from_file, f"config file {path}")
        merged = deep_merge(merged, normalized(model, from_file))
    merged = deep_merge(merged, _from_env(model, env))
    by_path = {leaf.dotted: leaf for leaf in leaves(model)}
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        if dotted not in by_path:
            raise ConfigError(f"unknown setting {dotted}{_closest(dotted, list(by_path))}")
        merged = deep_merge(merged, _nest(by_path[dotted].path, value))
    if record is not None:
        section = merged.get("pipeline")
        asked = section.get("name") if isinstance(section, Mapping) else None
        base = record(asked)
        if base:
            where = f"what setup recorded for pipeline {asked or '(the latest)'}: rerun osrerank setup"
            _check_keys(model, base, where)
            base = normalized(model, base)
            if _another_model(base, merged):  # its kind, format, precision... were the recorded model's
                base = {k: v for k, v in base.items() if k != "model"}
            merged = deep_merge(base, merged)
    return validated(model, merged)


def _another_model(recorded: Mapping[str, Any], given: Mapping[str, Any]) -> bool:
    """Whether the sources name a model other than the recorded setup's: then none of the recorded model's
    settings apply (a cross-encoder after a bi-encoder setup must not inherit its kind)."""
    path = (given.get("model") or {}).get("path") if isinstance(given.get("model"), Mapping) else None
    old = (recorded.get("model") or {}).get("path") if isinstance(recorded.get("model"), Mapping) else None
    if path is None or old is None:
        return path is not None
    return Path(str(path)).expanduser().resolve() != Path(str(old)).expanduser().resolve()  # a hub id: as text


def secret_free(values: Mapping[str, Any]) -> dict[str, Any]:
    """A settings dump without secrets (what setup records and what may be printed)."""
    return {
        k: secret_free(v) if isinstance(v, Mapping) else v
        for k, v in values.items()
        if not isinstance(v, SecretStr) and v is not None
    }
