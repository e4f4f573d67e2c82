"""The import graph keeps the layers of the package docstring: imports only run downward.

Every import statement counts, including those inside functions (a lazy import is still a
dependency); ``if TYPE_CHECKING`` blocks count too, since they name the same modules.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import geoseg

PACKAGE = Path(geoseg.__file__).resolve().parent


def _layers() -> dict[str, int]:
    """Module name prefix -> layer number, as the package docstring lists them."""
    text = geoseg.__doc__ or ""
    layers: dict[str, int] = {}
    for number, body in re.findall(r"^(\d+)\. \w+: (.*?)(?=^\d+\. |^\s*$)", text, re.M | re.S):
        for name in re.findall(r"geoseg[\w.]*", body):
            layers[name] = int(number)
    return layers


def _module_name(path: Path) -> str:
    parts = ("geoseg", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """The geoseg modules a file imports, with relative imports resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            # ``from geoseg.io import scene`` imports the module geoseg.io.scene
            for alias in node.names:
                if (
                    (PACKAGE.parent / f"{name}.{alias.name}".replace(".", "/"))
                    .with_suffix(".py")
                    .exists()
                ):
                    found.add(f"{name}.{alias.name}")
    return {n for n in found if n == "geoseg" or n.startswith("geoseg.")}


def _layer_of(name: str, layers: dict[str, int]) -> int:
    owners = [p for p in layers if name == p or name.startswith(p + ".")]
    if not owners:
        raise AssertionError(f"{name} is in no layer of the geoseg package docstring")
    return layers[max(owners, key=len)]


GRAPH = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_docstring_lists_every_layer() -> None:
    layers = _layers()
    assert sorted(set(layers.values())) == list(range(1, 9))
    assert {"geoseg.core", "geoseg.io", "geoseg.pipeline", "geoseg.cli"} <= set(layers)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_downward(module: str) -> None:
    layers = _layers()
    own = _layer_of(module, layers)
    upward = sorted(n for n in GRAPH[module] if _layer_of(n, layers) > own)
    assert not upward, f"{module} (layer {own}) imports a later layer: {upward}"


def test_no_two_modules_import_each_other() -> None:
    # depth-first search for a cycle among the modules
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH.get(name, ())):
            if target == name or target not in GRAPH:
                continue
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state and (cycle := visit(module)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    # the checker itself can fail: an io module importing the pipeline is caught
    layers = _layers()
    assert _layer_of("geoseg.pipeline", layers) > _layer_of("geoseg.io.scene", layers)
    assert _layer_of("geoseg.io.scene", layers) == _layer_of("geoseg.io", layers)
    with pytest.raises(AssertionError, match="in no layer"):
        _layer_of("geoseg_other.thing", layers)


MAX_MODULE_LINES = 600
MAX_FUNCTION_CODE_LINES = 80


def _code_lines(source: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of code of a function: no docstring, comment or blank line."""
    lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    first = node.body[0]
    value = first.value if isinstance(first, ast.Expr) else None
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        lines -= set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    stripped = (source[i - 1].strip() for i in lines)
    return sum(1 for text in stripped if text and not text.startswith("#"))


def _oversized(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        source = text.splitlines()
        if len(source) > MAX_MODULE_LINES:
            found.append(f"{path.name}: {len(source)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                count = _code_lines(source, node)
                if count > MAX_FUNCTION_CODE_LINES:
                    found.append(f"{path.name}:{node.lineno} {node.name}: {count} lines of code")
    return found


def test_modules_and_functions_stay_small() -> None:
    # one responsibility per file and per function: split rather than raise the limits
    assert _oversized(PACKAGE) == []


def test_the_size_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_CODE_LINES + 1))
    (tmp_path / "long.py").write_text(f'def f() -> None:\n    """Doc."""\n\n    # why\n{body}')
    assert _oversized(tmp_path) == [f"long.py:1 f: {MAX_FUNCTION_CODE_LINES + 2} lines of code"]
