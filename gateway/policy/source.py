"""YAML sources with line numbers, and errors that name the file and line of the offending node.

A file is composed into PyYAML's node tree first; walking it gives a map from each value's path (as pydantic
reports it in an error ``loc``, e.g. ``("rules", 2, "when", "groups")``) to its 1-based line. Validation errors
are then mapped back to the deepest path that exists in the file.
"""
from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Loc = tuple[Any, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        return f"{where}: {self.message}"


class PolicyError(Exception):
    """A policy (or policy test) source is unusable; ``str()`` is one `file:line: problem` per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Source:
    """One parsed YAML file: its data and where each node starts."""

    file: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    """Path of a value -> line of the value (1-based)."""
    key_lines: dict[Loc, int] = field(default_factory=dict)
    """Path of a mapping entry -> line of its key (for `unknown key` errors)."""

    def line(self, loc: Loc) -> int:
        """Line of the deepest node on ``loc`` that exists in the file (line 1 for the document itself)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        line = self.key_lines.get(tuple(loc)) if key else None
        return Problem(self.file, line or self.line(loc), message)


def parse_yaml(file: str, text: str) -> Source:
    """Parse one YAML document, recording node lines; syntax errors and duplicate keys raise PolicyError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        msg = exc.problem or exc.context
        if exc.context and exc.problem and exc.context_mark:
            msg = f"{exc.problem} ({exc.context} started on line {exc.context_mark.line + 1})"
        raise PolicyError([Problem(file, line, f"invalid YAML: {msg}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Problem(file, 1, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    src = Source(file, data)
    problems: list[Problem] = []
    if node is not None:
        _walk(node, (), src, problems)
    if problems:
        raise PolicyError(problems)
    return src


def _walk(node: yaml.Node, loc: Loc, src: Source, problems: list[Problem]) -> None:
    src.lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            if key in seen:
                problems.append(Problem(src.file, key_node.start_mark.line + 1, f"duplicate key {key!r}"))
            seen.add(key)
            src.key_lines[loc + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, loc + (key,), src, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (i,), src, problems)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(model: type[M], src: Source, hint: Callable[[Loc], str | None] | None = None) -> M:
    """Validate ``src.data`` against ``model``; every error becomes a Problem at the offending line."""
    try:
        return model.model_validate(src.data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if _is_data_loc(p))
            where = format_loc(loc)
            if err["type"] == "extra_forbidden":
                key = loc[-1] if loc else "?"
                allowed = _allowed_keys(model, loc[:-1])
                msg = f"{format_loc(loc[:-1])}: unknown key {key!r}"
                extra = hint(loc) if hint else None
                if extra:
                    msg += f" ({extra})"
                elif allowed:
                    msg += f" (allowed: {', '.join(allowed)})"
                problems.append(src.problem(loc, msg, key=True))
            elif err["type"] == "missing":
                problems.append(src.problem(loc[:-1], f"{where}: required key is missing"))
            else:
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(src.problem(loc, f"{where}: {msg}"))
        raise PolicyError(sorted(problems, key=lambda p: p.line)) from None


def _is_data_loc(part: Any) -> bool:
    # pydantic adds tags such as "function-after[...]" or union member names; they are not in the file.
    return isinstance(part, int) or (isinstance(part, str) and "[" not in part)


def _allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the model found at ``loc`` (following list items and optionals), or [] if unknown."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp
