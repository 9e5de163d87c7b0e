"""The layering, read from the source: the trainer never imports the assembly; the core imports nothing concrete; no
framework module imports a plugin or a recipe. Every import statement counts, including those inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "latentkit"

#: what latentkit/train may import from latentkit (the bare package: its __version__)
TRAINER_MAY_IMPORT = ("latentkit.core", "latentkit.plugins", "latentkit.data", "latentkit.errors", "latentkit._atomic",
                      "latentkit.devices", "latentkit.precision", "latentkit.validation", "latentkit.train")
#: latentkit.validation (the option rules) imports only latentkit.errors, attrs and the standard library
CORE_MAY_IMPORT = ("latentkit.core", "latentkit.errors", "latentkit.validation")
CORE_THIRD_PARTY = ("torch", "attrs")


def _module_name(path: Path) -> str:
    if not path.is_relative_to(PACKAGE.parent):  # a module outside the checkout (the test of this reader)
        return path.stem
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            else:
                names.append(node.module or "")
    return names


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_imports_of_reads_relative_and_nested_imports(tmp_path):
    names = imports_of(PACKAGE / "train" / "trainer.py")
    assert "latentkit.train.task" in names and "torch" in names
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import latentkit.assembly.build\n")
    assert imports_of(source) == ["latentkit.assembly.build"]
    relative = PACKAGE / "train" / "__init__.py"  # resolve "from .x import y" against the package
    assert all(not name.startswith(".") for name in imports_of(relative))


@pytest.mark.parametrize("path", _modules(PACKAGE / "train"), ids=lambda p: p.name)
def test_the_trainer_imports_no_assembly(path):
    bad = [name for name in imports_of(path)
           if _within(name, ("latentkit",)) and name != "latentkit" and not _within(name, TRAINER_MAY_IMPORT)]
    assert not bad, f"{path.name} imports {bad}; latentkit/train may import only {TRAINER_MAY_IMPORT}"


@pytest.mark.parametrize("path", _modules(PACKAGE), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_framework_module_imports_a_plugin_or_a_recipe(path):
    bad = [name for name in imports_of(path) if _within(name, ("latentkit_plugins", "recipes"))]
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}; plugins are found through entry points only"


@pytest.mark.parametrize("path", _modules(PACKAGE / "core"), ids=lambda p: p.name)
def test_the_core_imports_only_itself_errors_torch_attrs_and_the_standard_library(path):
    bad = []
    for name in imports_of(path):
        top = name.split(".")[0]
        if top == "latentkit":
            if not _within(name, CORE_MAY_IMPORT):
                bad.append(name)
        elif top not in CORE_THIRD_PARTY and top not in sys.stdlib_module_names and top != "__future__":
            bad.append(name)
    assert not bad, f"core/{path.name} imports {bad}; the core may import {CORE_MAY_IMPORT}, torch, attrs, stdlib"


#: what latentkit/specs.py may import from latentkit: it is foundation (plugins and recipe configs import it)
SPECS_MAY_IMPORT = ("latentkit.errors", "latentkit.validation", "latentkit.train.config")
#: foundation modules: torch, the standard library and latentkit.errors only (the trainer and the specs build on them)
FOUNDATION = ("devices.py", "precision.py", "validation.py", "errors.py")


@pytest.mark.parametrize("name", FOUNDATION)
def test_foundation_modules_import_only_errors(name):
    bad = [m for m in imports_of(PACKAGE / name) if _within(m, ("latentkit",)) and not _within(m, ("latentkit.errors",))]
    assert not bad, f"{name} imports {bad}; a foundation module may import only latentkit.errors from latentkit"


def test_the_specs_are_foundation():
    bad = [name for name in imports_of(PACKAGE / "specs.py")
           if _within(name, ("latentkit",)) and not _within(name, SPECS_MAY_IMPORT)]
    assert not bad, f"specs.py imports {bad}; plugins import it, so it may import only {SPECS_MAY_IMPORT}"


#: Registry kinds whose names the framework never writes: recipes and saved specs name the model's plugins.
PLUGIN_KINDS = ("families", "networks", "objectives", "schedules")
#: Where plugin names are inherent: the importer of the original JointVAE code's checkpoints translates them INTO
#: latentkit's jointvae plugins.
NAMES_ALLOWED_UNDER = ("interop",)
#: The same word naming something else: the FactorVAE disentanglement metric's own name, not the objective.
OTHER_MEANINGS = {("metrics/factorvae.py", "factorvae")}


def string_constants(path: Path) -> list[tuple[int, str]]:
    """``(line, value)`` of every string literal in ``path`` except docstrings and bare string statements (prose);
    f-string parts count as their own literals."""
    tree = ast.parse(path.read_text(), filename=str(path))
    prose = {id(node.value) for node in ast.walk(tree)
             if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose]


def _plugin_names() -> set[str]:
    from latentkit.plugins import get_registry

    registry = get_registry()
    return {name for kind in PLUGIN_KINDS for name in registry.kinds[kind].names()}


def test_string_constants_skip_docstrings_and_find_literals(tmp_path):
    source = tmp_path / "m.py"
    source.write_text('"""gaussian"""\ndef f():\n    """jointvae"""\n    return {"net": "jointvae_conv"}\n')
    assert string_constants(source) == [(4, "net"), (4, "jointvae_conv")]


def test_the_framework_names_no_plugin():
    """Plugin names come from recipes and saved specs, never from latentkit/ itself (issue 19, item 7): a default such
    as ``network="jointvae_conv"`` in a framework class would make every other model carry JointVAE's choices."""
    names = _plugin_names()
    assert {"gaussian", "gumbel_softmax", "jointvae_conv", "jointvae", "linear", "constant"} <= names
    bad = []
    for path in _modules(PACKAGE):
        where = path.relative_to(PACKAGE)
        if where.parts[0] in NAMES_ALLOWED_UNDER:
            continue
        bad += [f"{where}:{line}: {value!r}" for line, value in string_constants(path)
                if value in names and (where.as_posix(), value) not in OTHER_MEANINGS]
    assert not bad, "the framework names plugins (name them in a recipe or a plugin instead): " + "; ".join(bad)
