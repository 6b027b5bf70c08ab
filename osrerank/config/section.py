"""The base of every settings section, and the one way a section field is declared.

A section is a small frozen pydantic model declared beside the code that uses it (``ModelOptions`` in
scorer.py, ``PipelineOptions`` in pipeline.py, a target's options in its module). ``setting`` gives a field
its description (the ``--help`` text and the README's words, written once) and, where it is not the dashed
field name, its flag; ``flag=None`` keeps a field off the command line (a secret, say: variable or TOML only).
The root in settings.py composes the sections; sources.py fills them; the CLI generates their flags.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Section", "flag_of", "setting"]

#: json_schema_extra key holding a field's flag ("" = the dashed field name, None = no flag)
FLAG = "osrerank_flag"


class Section(BaseModel):
    """A group of settings owned by one part of the kit. Frozen: change one with ``Settings.updated``.

    ``shorthand`` names the field a bare string sets, so ``Settings(model="DIR")`` means ``model.path`` and a
    TOML ``index = "docs"`` means ``index.name``: the one value a section is mostly about."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    shorthand: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        if isinstance(value, str) and cls.shorthand:
            return {cls.shorthand: value}
        return value


def setting(
    default: Any,
    description: str,
    *,
    flag: str | None = "",
    factory: Callable[[], Any] | None = None,
    **constraints: Any,
) -> Any:
    """A section field: its default (or a ``factory`` computing it once, at validation), the one description
    every help text is made from, and its flag (``""``: ``--field-name``; ``None``: none). ``constraints`` are
    pydantic's (``ge``, ``pattern``...)."""
    if factory is not None:
        return Field(default_factory=factory, description=description, json_schema_extra={FLAG: flag}, **constraints)
    return Field(default, description=description, json_schema_extra={FLAG: flag}, **constraints)


def flag_of(info: Any, name: str) -> str | None:
    """The flag of a field (its ``FieldInfo``), or None for one offered only as a variable or TOML key."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    flag = extra.get(FLAG, None)
    if flag is None:
        return None
    return str(flag or "--" + name.replace("_", "-"))
