"""The api layer's error tree: what loading and validating manifests can report. Pure.

Every message names where the problem is, the way a user finds it again:
`web.yaml doc 2 Service default/web: spec.ports[0].port: 70000 is not in 1..65535`
(documents are numbered from 1, in the order they appear in the file) and, for YAML that
does not parse, `web.yaml:12:3: mapping values are not allowed here`.
"""
from __future__ import annotations

from dataclasses import dataclass


class ApiError(Exception):
    """Base of every error raised by podnet.api."""


@dataclass(frozen=True)
class Origin:
    """Where a manifest came from: file as the user named it, document (1-based) and,
    for an item of a `List`, the item index (0-based, as in `items[3]`)."""
    file: str
    doc: int
    item: int | None = None

    def __str__(self) -> str:
        s = f"{self.file} doc {self.doc}"
        return s if self.item is None else f"{s} items[{self.item}]"


@dataclass(frozen=True)
class FieldError:
    """One problem in one object: the field path (`spec.ports[0].port`) and what is wrong."""
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class LoadError(ApiError):
    """A file that cannot be read or parsed (no object of it is usable)."""

    def __init__(self, file: str, message: str, line: int | None = None, column: int | None = None):
        self.file, self.line, self.column, self.message = file, line, column, message
        where = file
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {message}")


class InvalidObjects(ApiError):
    """One or more objects failed validation. `lines` holds one full message per problem."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


def object_label(kind: str, namespace: str, name: str) -> str:
    """`Service default/web`, `IPPool pool-v4`, `Service ?` when the name is missing."""
    ident = f"{namespace}/{name or '?'}" if namespace else (name or "?")
    return f"{kind or '?'} {ident}"
