"""Every public function and method of pyxen (the lab runner aside) has a docstring."""

import ast
import pathlib

PYXEN = pathlib.Path(__file__).resolve().parents[2] / "pyxen"
# dunder methods whose meaning is the protocol's
PROTOCOL = {"__init__", "__repr__", "__str__", "__enter__", "__exit__", "__aenter__",
            "__aexit__", "__iter__", "__next__", "__aiter__", "__anext__", "__await__",
            "__del__", "__getattr__", "__len__", "__contains__", "__getitem__",
            "__setitem__", "__delitem__", "__post_init__", "__hash__", "__eq__", "__bool__",
            "__buffer__", "__release_buffer__"}


def _overload(fn: ast.AST) -> bool:
    return any((isinstance(d, ast.Name) and d.id == "overload")
               or (isinstance(d, ast.Attribute) and d.attr == "overload")
               for d in getattr(fn, "decorator_list", ()))


def _missing() -> list[str]:
    out = []
    for path in sorted(PYXEN.rglob("*.py")):
        if "lab" in path.relative_to(PYXEN).parts:
            continue

        def walk(node: ast.AST, prefix: str, public: bool,
                 path: pathlib.Path = path) -> None:
            for c in ast.iter_child_nodes(node):
                if isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    dunder = c.name.startswith("__") and c.name.endswith("__")
                    pub = public and (not c.name.startswith("_")
                                      or (dunder and c.name not in PROTOCOL))
                    if pub and not _overload(c) and ast.get_docstring(c) is None:
                        out.append(f"{path.relative_to(PYXEN.parent)}:{c.lineno} "
                                   f"{prefix}{c.name}")
                elif isinstance(c, ast.ClassDef):
                    walk(c, f"{prefix}{c.name}.", public and not c.name.startswith("_"), path)
        walk(ast.parse(path.read_text()), "", True)
    return out


def test_public_functions_have_docstrings():
    assert _missing() == []
