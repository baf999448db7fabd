"""Imports run down the floors of ARCHITECTURE.md, and no module names another module's private."""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gluon_maskrcnn")

# ARCHITECTURE.md's floors: a module may import from its own floor or the floors below
FLOORS = {
    "files": 0, "boxes": 0, "internals": 0, "store": 0, "ops": 0, "errors": 0, "onnx_ops": 0, "masks": 0, "version": 0,
    "data": 1, "modeling": 1,
    "model_zoo": 2,
    "inference": 3, "predict": 3, "export": 3, "onnx_export": 3, "viz": 3, "quantization": 3,
    "engine": 4,
    "benchmarks": 5,
}


def _modules():
    """(dotted name, path, is a package's __init__) of every module under the package."""
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path[:-3], os.path.dirname(PACKAGE)).replace(os.sep, ".")
                yield dotted.replace(".__init__", ""), path, name == "__init__.py"


def _relative_imports(path, module, is_package):
    """(imported module, imported names) of each relative import in the file at ``path``."""
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = package.split(".")
            base = parts[:len(parts) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            yield target, [alias.name for alias in node.names]


def _unit(dotted):
    """The floor unit of a dotted name: its first part below the package, or None for the root."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_unit_has_a_floor():
    units = {_unit(module) for module, _, _ in _modules()} - {None}
    assert units <= set(FLOORS), "add %s to ARCHITECTURE.md's floors" % sorted(units - set(FLOORS))


@pytest.mark.parametrize("module, path, is_package", list(_modules()), ids=lambda v: str(v))
def test_imports_run_down_and_name_no_private(module, path, is_package):
    source_unit = _unit(module)
    for target, names in _relative_imports(path, module, is_package):
        imported = [target + "." + name if _unit(target) is None else target for name in names]
        for dotted in imported:
            unit = _unit(dotted)
            if source_unit is None or unit is None or unit == source_unit:
                continue  # the package's own __init__ is the public front, above every floor
            assert FLOORS[unit] <= FLOORS[source_unit], "%s imports %s from a higher floor" % (module, dotted)
        private = [name for name in names if name.startswith("_")]
        assert not private, "%s imports private names %s from %s" % (module, private, target)
