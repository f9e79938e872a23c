"""The rules the packages' docstrings state, checked: no import circle between modules
(lazy imports inside functions count: they are how circles hide), no module of
fpar_models imported inside a function but the one that must be, the workers never import
the gateway, what both share imports neither, the gateway never imports torch, and the
OpenVINO child process neither."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "service", "worker", "fpar_models", "cli", "launcher", "benchmarks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports_of(node: ast.Import | ast.ImportFrom, path: Path, known: set[str]) -> set[str]:
    """The project's modules one import statement in `path` names. `from a import b` is an
    import of a.b when that is a module, else of a."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & known
    base = node.module or ""
    if node.level:  # relative, from the folder `path` is in
        folder = list(path.parent.relative_to(ROOT).parts)
        base = ".".join(folder[:len(folder) - node.level + 1] + ([base] if base else []))
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names} & known


def imports(path: Path, known: set[str]) -> set[str]:
    """The project's modules that `path` imports, anywhere in it."""
    this = module_name(path)
    nodes = [n for n in ast.walk(ast.parse(path.read_text(), str(path))) if isinstance(n, ast.Import | ast.ImportFrom)]
    found = set().union(*(imports_of(node, path, known) for node in nodes))
    # a package's own modules importing the package (its __init__) is how packages work, not a circle
    return {m for m in found if m != this and not this.startswith(f"{m}.")}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) for name, path in found.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def test_no_module_imports_itself_through_others():
    assert circles(graph()) == []


def test_the_circle_finder_finds_circles():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_workers_never_import_the_gateway_and_the_shared_core_neither():
    edges = graph()
    wrong = {(m, i) for m, targets in edges.items() for i in targets
             if (m.startswith(("worker", "core")) and i.startswith("service"))
             or (m.startswith("core") and i.startswith("worker"))}
    assert wrong == set()


def test_no_module_of_fpar_models_is_imported_inside_a_function_but_one():
    found = modules()
    deferred = {name for name, path in found.items() if name.startswith("fpar_models")
                for fn in ast.walk(ast.parse(path.read_text())) if isinstance(fn, ast.FunctionDef)
                for node in ast.walk(fn) if isinstance(node, ast.Import | ast.ImportFrom)
                and any(m.startswith("fpar_models") for m in imports_of(node, path, set(found)))}
    # its __getattr__: Predictor and Clip load on first use, so the OpenVINO and NNCF child
    # processes, which import modules of the package, stay torch-free
    assert deferred == {"fpar_models.serving"}


def test_the_gateway_the_cli_and_the_openvino_child_never_import_torch():
    for modules_ in ("service.main", "cli.main", "worker.healthcheck", "fpar_models.serving.isolated"):
        code = f"import sys, {modules_}; sys.exit('torch' in sys.modules)"
        run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f"importing {modules_} imports torch: {run.stderr[-2000:]}"
