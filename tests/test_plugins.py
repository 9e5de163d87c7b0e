"""The plugin system: start-up validation, third-party registration, provenance, blocking, and a plugin-free core.

Why these tests: the plugin boundary is latentkit's architecture. A misspelt hook that is silently ignored, a duplicate
name that silently shadows a built-in, or a core module that quietly imports a concrete plugin would each undo it
without any other test noticing.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest

import latentkit
from latentkit.assembly.build import build_latent
from latentkit.cli import main as cli_main
from latentkit.assembly.specs import ModelSpec
from latentkit.errors import PluginError, UnknownNameError
from latentkit.plugins import block_plugin, get_registry, hookimpl, unblock_plugin
from latentkit.plugins.registry import KINDS
from latentkit_plugins.gaussian import Gaussian

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_PLUGINS = {"gaussian", "gumbel_softmax", "schedules", "conv_networks", "jointvae_objective"}


def _module(name: str, **functions) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, fn in functions.items():
        setattr(module, key, fn)
    return module


class ThirdPartyGaussian(Gaussian):
    """Stands in for a family from another distribution."""

    family_name = "third_party_gaussian"


# --- start-up validation -------------------------------------------------------------------------------------------
def test_misspelt_hook_fails_at_start_up(plugins):
    @hookimpl
    def latentkit_register_familes(registry):  # sic: "familes"
        registry.add("never", ThirdPartyGaussian)

    with pytest.raises(PluginError) as info:
        plugins.register(_module("typo_plugin", latentkit_register_familes=latentkit_register_familes), "typo_plugin")
    message = str(info.value)
    assert "latentkit_register_familes" in message and "latentkit_register_families" in message  # names the fix
    assert "never" not in get_registry().families  # and nothing of it stays registered


def test_an_entry_point_that_cannot_be_imported_names_itself_and_the_fix(tmp_path, monkeypatch):
    # What a stale editable install looks like: the distribution's metadata is found, its module is not.
    dist_info = tmp_path / "stale_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: stale-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[latentkit]\nstale = stale_plugin_moved_away.families\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from latentkit.plugins.manager import make_plugin_manager

    with pytest.raises(PluginError) as info:
        make_plugin_manager()
    message = str(info.value)
    assert "stale = stale_plugin_moved_away.families" in message and "stale-plugin 1.0" in message
    assert "No module named 'stale_plugin_moved_away'" in message and "pip install -e ." in message


def test_unmarked_misspelt_hook_fails_at_start_up(plugins):
    def latentkit_register_familes(registry):
        registry.add("never", ThirdPartyGaussian)

    with pytest.raises(PluginError):
        plugins.register(_module("unmarked_typo", latentkit_register_familes=latentkit_register_familes), "unmarked")


def test_hook_that_raises_is_a_plugin_error(plugins):
    @hookimpl
    def latentkit_register_families(registry):
        raise RuntimeError("cannot import my CUDA kernel")

    with pytest.raises(PluginError, match="failed while registering families.*cannot import my CUDA kernel"):
        plugins.register(_module("raising", latentkit_register_families=latentkit_register_families), "raising")


def test_non_identifier_name_is_a_plugin_error(plugins):
    @hookimpl
    def latentkit_register_families(registry):
        registry.add("von mises", ThirdPartyGaussian)

    with pytest.raises(PluginError, match="identifier"):
        plugins.register(_module("badname", latentkit_register_families=latentkit_register_families), "badname")


# --- third-party registration and provenance ------------------------------------------------------------------------
def test_third_party_plugin_adds_a_family_with_its_source(plugins):
    @hookimpl
    def latentkit_register_families(registry):
        registry.add("third_party_gaussian", ThirdPartyGaussian)

    plugins.register(_module("my_dist", latentkit_register_families=latentkit_register_families), "my_dist")
    entry = get_registry().families.entry("third_party_gaussian")
    assert entry.value is ThirdPartyGaussian
    assert entry.source.plugin == "my_dist" and entry.source.distribution == "(not installed)"
    assert get_registry().families.entry("gaussian").source.distribution == "latentkit"  # built-ins untouched
    # and the core builds it by name, knowing nothing about it
    spec = ModelSpec.from_dict(
        {
            "image_shape": [1, 32, 32],
            "channels": [{"name": "z", "family": "third_party_gaussian", "options": {"units": 3}}],
        }
    )
    latent = build_latent(spec)
    assert isinstance(latent.channels["z"], ThirdPartyGaussian)


def test_duplicate_names_are_an_error(plugins):
    @hookimpl
    def latentkit_register_families(registry):
        registry.add("gaussian", ThirdPartyGaussian)

    with pytest.raises(PluginError) as info:
        plugins.register(_module("shadow", latentkit_register_families=latentkit_register_families), "shadow")
    message = str(info.value)
    assert "'gaussian'" in message and "shadow" in message and "latentkit" in message
    assert get_registry().families.get("gaussian") is Gaussian  # the failed plugin left nothing behind


@pytest.mark.parametrize(
    ("kind", "name", "suggestion", "known"),
    [
        ("families", "gausian", "gaussian", ["gaussian", "gumbel_softmax"]),
        ("schedules", "linaer", "linear", ["constant", "linear"]),
        ("objectives", "jointvea", "jointvae", ["jointvae"]),
        ("networks", "jointvae_cnv", "jointvae_conv", ["jointvae_conv"]),
    ],
)
def test_unknown_name_lists_known_names_and_suggests_a_close_match(kind, name, suggestion, known):
    with pytest.raises(UnknownNameError) as info:
        get_registry().kinds[kind].get(name)
    message = str(info.value)
    assert f"Did you mean {suggestion!r}?" in message
    assert all(k in message for k in known)
    assert isinstance(info.value, KeyError)


def test_unknown_family_in_a_spec_is_an_unknown_name_error():
    spec = ModelSpec.from_dict({"image_shape": [1, 32, 32], "channels": [{"name": "c", "family": "gumbel_sofmax"}]})
    with pytest.raises(UnknownNameError, match="Did you mean 'gumbel_softmax'"):
        build_latent(spec)


def test_builtins_come_from_the_entry_point_group_of_the_latentkit_distribution():
    """Built-ins are found exactly like third-party plugins: entry points in group "latentkit"."""
    eps = {ep.name: ep for ep in entry_points(group="latentkit")}
    assert BUILTIN_PLUGINS <= set(eps)
    for name in BUILTIN_PLUGINS:
        assert eps[name].dist.name == "latentkit"
        assert eps[name].value.startswith("latentkit_plugins.")
    dist_version = version("latentkit")
    for kind in KINDS:
        for entry in get_registry().kinds[kind]:
            assert entry.source.plugin in eps, f"{kind} {entry.name} did not come from an entry point"
            assert (entry.source.distribution, entry.source.version) == ("latentkit", dist_version)


def test_cli_plugins_json_lists_every_kind_with_distribution_and_version(capsys):
    """An object with one list per kind: ``{"families": [{"name", "distribution", "version", "plugin"}, ...], ...}``."""
    assert cli_main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert isinstance(listing, dict)
    assert set(listing) == set(KINDS) == {"families", "objectives", "networks", "schedules", "datasets", "metrics"}
    registry = get_registry()
    for kind in KINDS:
        assert [entry["name"] for entry in listing[kind]] == registry.kinds[kind].names()
        for entry in listing[kind]:
            assert set(entry) == {"name", "distribution", "version", "plugin"}, entry
            assert entry["distribution"] == "latentkit" and entry["version"] == latentkit.__version__, entry
            assert entry["plugin"]
    assert {"gaussian", "gumbel_softmax"} <= {entry["name"] for entry in listing["families"]}


def test_cli_plugins_json_keeps_a_kind_with_nothing_registered(plugins, capsys):
    """Every kind's key is always there, so a consumer can index it without checking."""
    plugins.block("schedules")  # the only plugin that registers schedules
    assert cli_main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["schedules"] == [] and set(listing) == set(KINDS)
    assert listing["families"]


def test_cli_plugins_text_shows_every_kind(capsys):
    assert cli_main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert all(f"{kind}:" in out for kind in KINDS)


def test_block_plugin_removes_a_builtin():
    block_plugin("gaussian")
    try:
        families = get_registry().families
        assert "gaussian" not in families and "gumbel_softmax" in families
        with pytest.raises(UnknownNameError):
            families.get("gaussian")
    finally:
        unblock_plugin("gaussian")
    assert get_registry().families.get("gaussian") is Gaussian


# --- the core imports no concrete plugin ----------------------------------------------------------------------------
def test_core_imports_no_concrete_plugin_at_run_time():
    """Importing the core modules in a fresh interpreter loads no module of latentkit_plugins or recipes."""
    code = (
        "import json, sys\n"
        "import latentkit.core, latentkit.assembly.build, latentkit.assembly.specs, latentkit.assembly.checkpoint, latentkit.testing\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('latentkit_plugins', 'recipes'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):  # importlib.import_module("...") / __import__("...")
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                if isinstance(node.args[0].value, str):
                    found.append((node.lineno, node.args[0].value))
    return found


def test_no_file_under_latentkit_imports_a_concrete_plugin():
    """A static check, so that an import hidden in a rarely-run function is caught too."""
    offenders = []
    files = sorted((ROOT / "latentkit").rglob("*.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for lineno, module in _imported_modules(tree):
            if module.split(".")[0] in ("latentkit_plugins", "recipes", "plugins"):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    assert not offenders, "the core must reach plugins only through the registry:\n" + "\n".join(offenders)


def test_the_static_check_sees_every_form_of_import():
    """The check above must be able to fail: each way of importing a plugin module is found."""
    source = (
        "import latentkit_plugins.gaussian\n"
        "from latentkit_plugins import schedules\n"
        "from recipes.jointvae_mnist import RECIPE\n"
        "def later():\n"
        "    import importlib\n"
        "    return importlib.import_module('latentkit_plugins.metrics'), __import__('recipes')\n"
    )
    found = [module for _, module in _imported_modules(ast.parse(source))]
    roots = [m.split(".")[0] for m in found]
    assert roots.count("latentkit_plugins") == 3 and roots.count("recipes") == 2
