"""Every ```python block of the pages below runs, so the docs cannot drift from the code they describe.

A page's blocks run in order, each as its own module, the way a reader would save them: a block whose first line is a
comment naming a file (``# my_package/betavae.py``) becomes that module (``my_package.betavae``), importable by the
blocks after it, and a block that defines ``latentkit_*`` hooks is registered as a plugin on a fresh
:class:`~latentkit.plugins.PluginHost` (no installed plugins: the page's own plugins stand alone), which is the default
host while the page runs. A latent family a page defines is then put through the conformance suite with a few examples.

Not run: blocks after a ``<!-- not run -->`` comment (use it sparingly: for a command's output or a sketch that needs
data), and blocks after ``<!-- example: PATH -->``, which quote a file that its own test runs (docs/trainer.md).
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

from latentkit.core import LatentFamily
from latentkit.plugins import PluginHost, use_host

ROOT = Path(__file__).resolve().parents[1]
#: the pages whose python blocks are complete programs, and whether the installed plugins are there too (objectives.md
#: builds on the built-in jointvae objective; plugins.md's examples stand alone)
PAGES = {"docs/plugins.md": False, "docs/objectives.md": True}

_BLOCK = re.compile(r"(?P<before>[^\n]*\n)?[ \t]*```python\n(?P<code>.*?)```", re.S)
_SKIP = re.compile(r"<!--\s*(not run|example:[^>]*)\s*-->")
_FILE = re.compile(r"#\s*([\w/]+)\.py\s*$")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line of its first line of code, code)`` of every python block not marked as not run."""
    blocks = []
    for match in _BLOCK.finditer(text):
        if _SKIP.search(match.group("before") or ""):
            continue
        blocks.append((text.count("\n", 0, match.start("code")) + 1, match.group("code")))
    return blocks


def _module_name(code: str) -> str | None:
    """``my_package.betavae`` for a block whose first line is ``# my_package/betavae.py``."""
    first = code.split("\n", 1)[0]
    match = _FILE.fullmatch(first.strip())
    return match.group(1).replace("/", ".") if match else None


class PageRun:
    """The modules and plugins one page's blocks made; removes its modules from ``sys.modules`` afterwards."""

    def __init__(self, page: str, entry_points: bool = False):
        self.page = page
        self.host = PluginHost(entry_points=entry_points)
        self.modules: list[types.ModuleType] = []
        self._added: list[str] = []

    def _install(self, name: str, module: types.ModuleType) -> None:
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent not in sys.modules:
                package = types.ModuleType(parent)
                package.__path__ = []
                sys.modules[parent] = package
                self._added.append(parent)
        if name in sys.modules and name not in self._added:
            raise AssertionError(f"{self.page}: the example module {name} shadows an installed module")
        sys.modules[name] = module
        self._added.append(name)
        if len(parts) > 1 and ".".join(parts[:-1]) in self._added:
            setattr(sys.modules[".".join(parts[:-1])], parts[-1], module)

    def run(self, line: int, code: str) -> None:
        name = _module_name(code) or f"docs_example_line{line}"
        module = types.ModuleType(name)
        module.__file__ = f"{self.page}:{line}"
        compiled = compile(code, f"{self.page} (block at line {line})", "exec")
        if _module_name(code):
            self._install(name, module)  # before running: dataclasses and pickling look modules up
        with use_host(self.host):
            exec(compiled, module.__dict__)
        self.modules.append(module)
        if any(key.startswith("latentkit_") and callable(value) for key, value in vars(module).items()):
            self.host.register(module, name)

    def families(self) -> list[type]:
        return [
            value for module in self.modules for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, LatentFamily) and value is not LatentFamily
            and value.__module__ == module.__name__
        ]

    def close(self) -> None:
        for name in reversed(self._added):
            sys.modules.pop(name, None)


@pytest.fixture(params=list(PAGES))
def page_run(request):
    page = request.param
    run = PageRun(page, entry_points=PAGES[page])
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for line, code in python_blocks((ROOT / page).read_text()):
                run.run(line, code)
        yield run
    finally:
        run.close()


def test_every_python_block_runs(page_run):
    assert page_run.modules, f"{page_run.page} has no python block that runs"
    own = {module.__name__ for module in page_run.modules}
    failed = [f for f in page_run.host.failures if f.plugin in own]
    assert not failed, f"{page_run.page}: its example plugins were left out: {failed}"


def test_plugins_page_registers_its_examples_and_they_pass_the_conformance_suite():
    from latentkit.testing import check_family

    run = PageRun("docs/plugins.md")
    try:
        for line, code in python_blocks((ROOT / run.page).read_text()):
            run.run(line, code)
        registry = run.host.registry
        assert "scaled_gaussian" in registry.families
        assert "tiny_mlp" in registry.networks
        assert {"betavae", "penalised"} <= set(registry.objectives.names())
        families = run.families()
        assert families, "docs/plugins.md defines no latent family"
        for family in families:
            report = check_family(family, max_examples=3)
            assert not report.failed and len(report.results) >= 2 * 11
    finally:
        run.close()


def test_blocks_marked_not_run_are_left_out_and_file_comments_name_modules():
    text = (
        "<!-- not run -->\n```python\nraise SystemExit\n```\n\n"
        "<!-- example: examples/x.py -->\n```python\nraise SystemExit\n```\n\n"
        "```python\n# pkg/mod.py\nX = 1\n```\n"
    )
    blocks = python_blocks(text)
    assert [code for _, code in blocks] == ["# pkg/mod.py\nX = 1\n"]
    assert blocks[0][0] == 12  # the line of the code's first line
    assert _module_name(blocks[0][1]) == "pkg.mod"
    assert _module_name("import torch\n") is None


def test_a_failing_block_fails_with_its_page_and_line():
    run = PageRun("docs/example.md")
    try:
        with pytest.raises(ZeroDivisionError) as info:
            run.run(7, "x = 1\ny = x / 0\n")
        assert any("docs/example.md (block at line 7)" in str(entry.path) for entry in info.traceback)
    finally:
        run.close()
