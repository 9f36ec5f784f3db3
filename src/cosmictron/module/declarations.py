"""Where a table or reducer is declared: the frame a schema mistake points at.

Most schema mistakes are refused by the decorator while the module runs, and Python's
own frames show the line. Some can only be found once the whole module has run: a
column's type, a reducer's signature, a scheduled table naming a reducer that is never
declared, a table name the datastore refuses. Those are raised by our code, after the
module's frames are gone, so the error would name the table or reducer but no line. This
module finds the declaration's line (a function's first decorator, from its code object;
a class's decorator, from the module's syntax tree, as a class keeps no line number
before Python 3.13) and renders it as one traceback frame, ``File "app.py", line 4, in
<module>`` and the line's text, as if the decorator had raised there.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from cosmictron.errors import SchemaError, attach_traceback
from cosmictron.module.tracebacks import source_line


@contextmanager
def pointing_at(
    declared: object, module_name: str, filename: str, source: bytes, column: str | None = None
) -> Iterator[None]:
    """Give a ``SchemaError`` raised inside, that has no frames yet, the line where
    ``declared`` (a table class or a reducer function), or its ``column``, is declared."""
    try:
        yield
    except SchemaError as error:
        if error.traceback is None:
            frame = declaration_frame(declared, module_name, filename, source, column)
            attach_traceback(error, frame)
        raise


def declaration_frame(
    declared: object, module_name: str, filename: str, source: bytes, column: str | None = None
) -> str | None:
    """The frame of ``declared``'s declaration (or its column's), or None when it is not
    in this module."""
    line = declaration_line(declared, module_name, filename, source, column)
    if line is None:
        return None
    frame = f'  File "{filename}", line {line}, in <module>'
    text = source_line(filename, line, {filename: source})
    return f"{frame}\n    {text}" if text else frame


def declaration_line(
    declared: object, module_name: str, filename: str, source: bytes, column: str | None = None
) -> int | None:
    """The line of ``declared``'s first decorator, or of its column ``column``."""
    code = getattr(declared, "__code__", None)
    if code is not None:
        return code.co_firstlineno if code.co_filename == filename else None
    if not isinstance(declared, type) or declared.__module__ != module_name:
        return None
    lines = _class_lines(source)
    if column is not None and f"{declared.__qualname__}.{column}" in lines:
        return lines[f"{declared.__qualname__}.{column}"]
    return lines.get(declared.__qualname__)


@cache
def _class_lines(source: bytes) -> dict[str, int]:
    """Qualified class name -> the line of its first decorator (else of its ``class``);
    ``Class.column`` -> the line of the column's annotation."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    lines: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                name = prefix + child.name
                first = min([d.lineno for d in child.decorator_list] or [child.lineno])
                lines.setdefault(name, first)
                for statement in child.body:
                    target = getattr(statement, "target", None)
                    if isinstance(statement, ast.AnnAssign) and isinstance(target, ast.Name):
                        lines.setdefault(f"{name}.{target.id}", statement.lineno)
                visit(child, name + ".")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, prefix + child.name + ".<locals>.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return lines
