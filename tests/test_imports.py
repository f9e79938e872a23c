"""fpar_models' import graph: no circles, and no module of the package imported inside a
function to dodge one. The one deferred import, Predictor and Clip at fpar_models.serving's
front door, keeps the OpenVINO child process torch-free."""
import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import fpar_models

ROOT = Path(fpar_models.__file__).parent


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = ast.parse(path.read_text())
    return found


def _imported(node: ast.AST, modules: dict) -> set[str]:
    """The package's modules an import statement names (`from X import y` names X, and X.y
    where y is a module)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names} & set(modules)
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return ({node.module} | {f"{node.module}.{a.name}" for a in node.names}) & set(modules)
    return set()


def test_no_module_of_the_package_imports_itself_in_a_circle():
    modules = _modules()
    graph = {name: set().union(*(_imported(node, modules) for node in tree.body)) for name, tree in modules.items()}
    graphlib.TopologicalSorter(graph).prepare()  # CycleError names the circle


def test_no_module_of_the_package_is_imported_inside_a_function():
    modules = _modules()
    deferred = [name for name, tree in modules.items() for fn in ast.walk(tree)
                if isinstance(fn, ast.FunctionDef) for node in ast.walk(fn) if _imported(node, modules)]
    assert deferred == ["fpar_models.serving"]  # its __getattr__


def test_the_isolated_openvino_process_imports_no_torch():
    code = ("import sys, fpar_models.serving, fpar_models.serving.isolated; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT.parent)
