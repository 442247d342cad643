"""The layout rules of docs/design.md, checked on the source tree beside these tests: no import
circle between bnpy's modules (imports inside functions included: a circle there is a circle
all the same, only deferred), and no source file over 700 lines: the library, its tests,
benchmarks, examples and tools alike."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "bnpy")
MAX_LINES = 700
# The folders that hold the repository's source (walked whole), and the top folder (its files only:
# setup.py). A fixed list, not a walk of the checkout: a virtual environment or build/ inside it is
# not the project's source.
SOURCE_FOLDERS = ["bnpy", "csrc", "tests", "benchmarks", "examples", "tools", "."]
SOURCE_SUFFIXES = (".py", ".pyi", ".c", ".h")
# Not ours to shorten: the article's script, kept line for line as the article prints it
# (tests/test_examples.py compares it with the seed).
EXEMPT = {os.path.join("examples", "article_script.py")}

if not os.path.isfile(os.path.join(PACKAGE, "__init__.py")):
    pytest.skip("the bnpy source tree is not beside the tests", allow_module_level=True)


def _modules():
    """{dotted module name: path} of every .py file under bnpy/."""
    modules = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


def _imported_modules(module, path, modules):
    """The bnpy modules ``module`` imports anywhere in its body."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            if node.level:
                target = base + "." + node.module if node.module else base
            else:
                target = node.module
            for alias in node.names:  # `from . import x` imports the module x
                full = target + "." + alias.name
                found.add(full if full in modules else target)
    return {name for name in found if name in modules and name != module}


def _import_circles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return circles


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _import_circles(graph) == [["a", "b", "c"]]


def test_no_import_circle_in_bnpy():
    modules = _modules()
    graph = {m: _imported_modules(m, p, modules) for m, p in modules.items()}
    assert graph["bnpy.models"] >= {"bnpy.saving", "bnpy._training"}  # the parser sees imports
    assert _import_circles(graph) == []


def _source_files(folder):
    """The source files under ``folder`` of the repository (only those directly in it for ".")."""
    top = os.path.join(ROOT, folder)
    walk = [next(os.walk(top))] if folder == "." else os.walk(top)
    for parent, _, files in walk:
        for name in files:
            if name.endswith(SOURCE_SUFFIXES):
                yield os.path.normpath(os.path.relpath(os.path.join(parent, name), ROOT))


def _too_long(root, paths):
    """(path, line count) of each file over MAX_LINES lines."""
    found = []
    for path in paths:
        with open(os.path.join(root, path), encoding="utf-8") as f:
            count = sum(1 for _ in f)
        if count > MAX_LINES:
            found.append((path, count))
    return found


def test_the_line_counter_finds_a_file_over_700_lines(tmp_path):
    (tmp_path / "long.py").write_text("x = 1\n" * 701)
    (tmp_path / "at_the_limit.c").write_text("int x;\n" * 700)
    assert _too_long(str(tmp_path), ["long.py", "at_the_limit.c"]) == [("long.py", 701)]


def test_the_exempt_files_exist():
    assert all(os.path.isfile(os.path.join(ROOT, path)) for path in EXEMPT)


@pytest.mark.parametrize("folder", SOURCE_FOLDERS)
def test_no_source_file_over_700_lines(folder):
    paths = sorted(p for p in _source_files(folder) if p not in EXEMPT)
    assert paths  # the folder is there and holds source
    assert _too_long(ROOT, paths) == []
