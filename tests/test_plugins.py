"""The plugin system: start-up validation, broken plugins left out, third-party registration, provenance, blocking,
explicit couplings between run-time plugins, and a plugin-free core.

Why these tests: the plugin boundary is latentkit's architecture. A misspelt hook that is silently ignored, a duplicate
name that silently shadows a built-in, one broken package that takes every command down, or a core module that quietly
imports a concrete plugin would each undo it without any other test noticing. Each test works on a fresh
:class:`PluginHost` where it can, so nothing leaks into the process's default host.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import types
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest
from latentkit_plugins.gaussian import Gaussian

import latentkit
from latentkit.assembly.build import build_latent
from latentkit.specs import ModelSpec
from latentkit.cli import main as cli_main
from latentkit.errors import PluginError, UnknownNameError
from latentkit.plugins import (
    PluginHost,
    PluginWarning,
    block_plugin,
    get_registry,
    hookimpl,
    manager,
    unblock_plugin,
    use_host,
)
from latentkit.plugins.registry import KINDS

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


def install(tmp_path: Path, monkeypatch, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """A distribution ``dist`` 1.0 on ``sys.path`` with ``[latentkit]`` entry points and the given module sources
    (``{module_name: source}``; a module named in an entry point but not given here cannot be imported)."""
    site = tmp_path / f"site-{dist}"
    dist_info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[latentkit]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(site))


GOOD_PLUGIN = """
from latentkit.plugins import hookimpl
from latentkit_plugins.gaussian import Gaussian

class Good(Gaussian):
    family_name = "good_gaussian"

@hookimpl
def latentkit_register_families(registry):
    registry.add("good_gaussian", Good)
"""



# --- plugins registered in code: the caller is right there, so they raise at once -----------------------------------
def test_misspelt_hook_fails_at_registration():
    host = PluginHost()

    @hookimpl
    def latentkit_register_familes(registry):  # sic: "familes"
        registry.add("never", ThirdPartyGaussian)

    with pytest.raises(PluginError) as info:
        host.register(_module("typo_plugin", latentkit_register_familes=latentkit_register_familes), "typo_plugin")
    message = str(info.value)
    assert "latentkit_register_familes" in message and "did you mean latentkit_register_families" in message
    assert "never" not in host.registry.families and not host.failures  # nothing of it stays, nothing left broken


def test_unmarked_misspelt_hook_fails_at_registration():
    def latentkit_register_familes(registry):
        registry.add("never", ThirdPartyGaussian)

    with pytest.raises(PluginError, match="latentkit_register_familes"):
        PluginHost().register(_module("unmarked_typo", latentkit_register_familes=latentkit_register_familes), "typo")


def test_hook_with_an_argument_its_hook_does_not_give_is_malformed():
    @hookimpl
    def latentkit_register_families(registry, config):
        registry.add("never", ThirdPartyGaussian)

    with pytest.raises(PluginError, match="malformed.*config"):
        PluginHost().register(_module("extra_arg", latentkit_register_families=latentkit_register_families), "x")


def test_hook_that_raises_is_a_plugin_error():
    @hookimpl
    def latentkit_register_families(registry):
        raise RuntimeError("cannot import my CUDA kernel")

    with pytest.raises(PluginError, match="failed while registering families.*cannot import my CUDA kernel"):
        PluginHost().register(_module("raising", latentkit_register_families=latentkit_register_families), "raising")


def test_non_identifier_name_is_a_plugin_error():
    @hookimpl
    def latentkit_register_families(registry):
        registry.add("von mises", ThirdPartyGaussian)

    with pytest.raises(PluginError, match="identifier"):
        PluginHost().register(_module("badname", latentkit_register_families=latentkit_register_families), "badname")


# --- installed plugins that are broken: reported and left out, everything else works --------------------------------
def test_an_entry_point_that_cannot_be_imported_is_left_out_naming_itself_and_the_fix(tmp_path, monkeypatch):
    # What a stale editable install looks like: the distribution's metadata is found, its module is not.
    install(tmp_path, monkeypatch, "stale-plugin", {"stale": "stale_plugin_moved_away.families"}, {})
    host = PluginHost()
    with pytest.warns(PluginWarning, match="stale"):
        (failure,) = host.failures
    assert (failure.plugin, failure.distribution, failure.version) == ("stale", "stale-plugin", "1.0")
    message = failure.message
    assert "stale = stale_plugin_moved_away.families" in message and "stale-plugin 1.0" in message
    assert "No module named 'stale_plugin_moved_away'" in message and "pip install -e ." in message
    assert "-p no:stale" in message and "LATENTKIT_DISABLE_PLUGINS=stale" in message
    assert host.registry.families.get("gaussian") is Gaussian  # everything else is there


def test_a_plugin_whose_module_raises_on_import_is_left_out(tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "raising-plugin", {"raiser": "raising_plugin_mod", "good": "good_plugin_mod"},
            {"raising_plugin_mod": "raise RuntimeError('needs CUDA 13')\n", "good_plugin_mod": GOOD_PLUGIN})
    host = PluginHost()
    with pytest.warns(PluginWarning):
        (failure,) = host.failures
    assert failure.plugin == "raiser" and "RuntimeError: needs CUDA 13" in failure.problem
    assert "reinstall or uninstall" in failure.fix and "pip install -e ." not in failure.fix  # not a stale install
    entry = host.registry.families.entry("good_gaussian")  # the same distribution's good plugin still loads
    assert (entry.source.plugin, entry.source.distribution, entry.source.version) == ("good", "raising-plugin", "1.0")


def test_a_malformed_installed_plugin_is_left_out_with_its_hooks(tmp_path, monkeypatch):
    source = GOOD_PLUGIN + "\n@hookimpl\ndef latentkit_step_ned(run, step, scalars):\n    pass\n"
    install(tmp_path, monkeypatch, "typo-plugin", {"typo": "typo_plugin_mod"}, {"typo_plugin_mod": source})
    host = PluginHost()
    with pytest.warns(PluginWarning):
        (failure,) = host.failures
    assert "latentkit_step_ned (did you mean latentkit_step_end?)" in failure.problem
    assert "good_gaussian" not in host.registry.families  # left out whole: its good hook too
    assert host.plugin_manager.get_plugin("typo") is None


def test_an_installed_plugin_whose_registration_raises_is_left_out_with_its_run_time_hooks(tmp_path, monkeypatch):
    source = (GOOD_PLUGIN + "\n@hookimpl\ndef latentkit_register_metrics(registry):\n    raise KeyError('x')\n"
              "\n@hookimpl\ndef latentkit_step_end(run, step, scalars):\n    raise AssertionError('never called')\n")
    install(tmp_path, monkeypatch, "half-plugin", {"half": "half_plugin_mod"}, {"half_plugin_mod": source})
    host = PluginHost()
    with pytest.warns(PluginWarning):
        (failure,) = host.failures
    assert "failed while registering metrics: KeyError" in failure.problem
    assert "good_gaussian" not in host.registry.families  # all or nothing: its families were not kept either
    assert "half" not in [impl.plugin_name for impl in host.hook.latentkit_step_end.get_hookimpls()]  # nor its hooks
    assert "progress" in [impl.plugin_name for impl in host.hook.latentkit_step_end.get_hookimpls()]
    assert "accuracy" in host.registry.metrics


def test_an_installed_plugin_shadowing_a_builtin_is_left_out(tmp_path, monkeypatch):
    source = GOOD_PLUGIN.replace('registry.add("good_gaussian", Good)',
                                 'registry.add("good_gaussian", Good)\n    registry.add("gaussian", Good)')
    install(tmp_path, monkeypatch, "shadow-plugin", {"shadow": "shadow_plugin_mod"}, {"shadow_plugin_mod": source})
    host = PluginHost()
    with pytest.warns(PluginWarning):
        (failure,) = host.failures
    assert "'gaussian'" in failure.problem and "shadow" in failure.problem and "latentkit" in failure.problem
    assert host.registry.families.get("gaussian") is Gaussian and "good_gaussian" not in host.registry.families


def test_registration_goes_through_pluggy_one_plugin_at_a_time(monkeypatch):
    """The registry is filled by calling the hooks through pluggy (monitoring, wrappers and tracing see the calls), each
    call with a single plugin's implementation, so each entry records its own plugin."""
    calls = []
    original = manager._PluginManager.__init__

    def monitored(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.add_hookcall_monitoring(
            lambda name, impls, kwargs: calls.append((name, [impl.plugin_name for impl in impls])),
            lambda outcome, name, impls, kwargs: None,
        )

    monkeypatch.setattr(manager._PluginManager, "__init__", monitored)
    registry = PluginHost().registry
    family_calls = [plugins for name, plugins in calls if name == "latentkit_register_families"]
    assert ["gaussian"] in family_calls and ["gumbel_softmax"] in family_calls
    assert all(len(plugins) == 1 for _, plugins in calls)
    assert registry.families.entry("gumbel_softmax").source.plugin == "gumbel_softmax"


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
            "network": "jointvae_conv",
        }
    )
    latent = build_latent(spec)
    assert isinstance(latent.channels["z"], ThirdPartyGaussian)


def test_duplicate_names_are_an_error():
    @hookimpl
    def latentkit_register_families(registry):
        registry.add("gaussian", ThirdPartyGaussian)

    host = PluginHost()
    with pytest.raises(PluginError) as info:
        host.register(_module("shadow", latentkit_register_families=latentkit_register_families), "shadow")
    message = str(info.value)
    assert "'gaussian'" in message and "shadow" in message and "latentkit" in message
    assert host.registry.families.get("gaussian") is Gaussian  # the failed plugin left nothing behind


def test_the_host_reloads_when_its_plugins_change():
    def plugin(family: type) -> types.ModuleType:
        @hookimpl
        def latentkit_register_families(registry):
            registry.add("swapped", family)

        return _module("swapped", latentkit_register_families=latentkit_register_families)

    class Other(ThirdPartyGaussian):
        pass

    host = PluginHost(entry_points=False)
    assert host.registry.families.names() == []
    host.register(plugin(ThirdPartyGaussian), "swapped")
    assert host.registry.families.get("swapped") is ThirdPartyGaussian
    host.register(plugin(Other), "swapped")  # another object under the same name
    assert host.registry.families.get("swapped") is Other
    host.block("swapped")
    assert "swapped" not in host.registry.families
    host.unblock("swapped")
    host.unregister("swapped")
    assert host.registry.families.names() == [] and host.hook.latentkit_step_end.get_hookimpls() == []


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
    spec = ModelSpec.from_dict({"image_shape": [1, 32, 32], "channels": [{"name": "c", "family": "gumbel_sofmax"}],
                                "network": "jointvae_conv"})
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
    """An object with one list per kind, ``{"families": [{"name", "distribution", "version", "plugin"}, ...], ...}``,
    and ``"broken"``, the plugins left out."""
    assert cli_main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert isinstance(listing, dict)
    assert set(listing) == {*KINDS, "broken"} == {"families", "objectives", "networks", "schedules", "datasets",
                                                  "metrics", "broken"}
    assert listing["broken"] == []
    registry = get_registry()
    for kind in KINDS:
        assert [entry["name"] for entry in listing[kind]] == registry.kinds[kind].names()
        for entry in listing[kind]:
            assert set(entry) == {"name", "distribution", "version", "plugin"}, entry
            assert entry["distribution"] == "latentkit" and entry["version"] == latentkit.__version__, entry
            assert entry["plugin"]
    assert {"gaussian", "gumbel_softmax"} <= {entry["name"] for entry in listing["families"]}


def test_cli_plugins_json_keeps_a_kind_with_nothing_registered(capsys):
    """Every kind's key is always there, so a consumer can index it without checking."""
    assert cli_main(["-p", "no:schedules", "plugins", "--json"]) == 0  # the only plugin that registers schedules
    listing = json.loads(capsys.readouterr().out)
    assert listing["schedules"] == [] and set(listing) == {*KINDS, "broken"}
    assert listing["families"]


def test_cli_plugins_text_shows_every_kind(capsys):
    assert cli_main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert all(f"{kind}:" in out for kind in KINDS)


def test_cli_plugins_lists_a_broken_plugin_and_exits_1(tmp_path, monkeypatch, capsys):
    install(tmp_path, monkeypatch, "stale-plugin", {"stale": "stale_plugin_moved_away.families"}, {})
    with use_host(PluginHost()):
        assert cli_main(["plugins"]) == 1
        out = capsys.readouterr().out
        assert "broken (left out):" in out and "'stale' from stale-plugin 1.0" in out and "No module named" in out
        assert "gaussian" in out  # everything else is listed
        assert cli_main(["plugins", "--json"]) == 1
        (broken,) = json.loads(capsys.readouterr().out)["broken"]
    assert broken["plugin"] == "stale" and broken["distribution"] == "stale-plugin" and broken["version"] == "1.0"
    assert "ModuleNotFoundError" in broken["problem"] and "pip install -e ." in broken["fix"]


# --- blocking ---------------------------------------------------------------------------------------------------------
def test_a_blocked_builtin_is_left_out():
    host = PluginHost(blocked=["gaussian"])
    assert "gaussian" not in host.registry.families and "gumbel_softmax" in host.registry.families
    with pytest.raises(UnknownNameError):
        host.registry.families.get("gaussian")
    host.unblock("gaussian")  # the host reloads when its plugins change
    assert host.registry.families.get("gaussian") is Gaussian


def test_block_plugin_acts_on_the_default_host():
    block_plugin("gaussian")
    try:
        assert "gaussian" not in get_registry().families
    finally:
        unblock_plugin("gaussian")
    assert get_registry().families.get("gaussian") is Gaussian


def test_dash_p_no_name_blocks_a_plugin_for_one_command(capsys, monkeypatch):
    monkeypatch.delenv("LATENTKIT_DISABLE_PLUGINS", raising=False)
    assert cli_main(["-p", "no:gaussian", "-p", "no:laplace", "plugins", "--json"]) == 0
    families = {entry["name"] for entry in json.loads(capsys.readouterr().out)["families"]}
    assert "gaussian" not in families and "laplace" not in families and "gumbel_softmax" in families
    assert "gaussian" in get_registry().families  # the default host is untouched afterwards
    assert "LATENTKIT_DISABLE_PLUGINS" not in os.environ  # and the environment restored


def test_dash_p_reaches_the_latentkit_processes_a_command_starts(monkeypatch):
    """sweep starts `python -m latentkit train ...` for each run: they must leave out the same plugins."""
    from latentkit.cli.plugins import plugin_host

    monkeypatch.setenv("LATENTKIT_DISABLE_PLUGINS", "laplace")
    with plugin_host(["no:gaussian"]) as host:
        assert os.environ["LATENTKIT_DISABLE_PLUGINS"] == "laplace,gaussian"
        assert {"gaussian", "laplace"} <= host.blocked and "gaussian" not in get_registry().families
    assert os.environ["LATENTKIT_DISABLE_PLUGINS"] == "laplace"
    assert "gaussian" in get_registry().families


def test_the_environment_variable_blocks_plugins(monkeypatch, capsys):
    monkeypatch.setenv("LATENTKIT_DISABLE_PLUGINS", "gaussian, laplace")
    assert cli_main(["plugins", "--json"]) == 0
    families = {entry["name"] for entry in json.loads(capsys.readouterr().out)["families"]}
    assert "gaussian" not in families and "laplace" not in families and "gumbel_softmax" in families
    assert PluginHost.from_environment().blocked == {"gaussian", "laplace"}


def test_blocking_an_unknown_name_with_dash_p_is_an_error_listing_the_plugins(capsys):
    assert cli_main(["-p", "no:gausian", "plugins"]) == 2
    err = capsys.readouterr().err
    assert "no plugin is named 'gausian'" in err and "Did you mean 'gaussian'?" in err and "jointvae_objective" in err
    assert cli_main(["-p", "gaussian", "plugins"]) == 2
    assert "-p takes no:NAME" in capsys.readouterr().err


def test_an_unknown_name_in_the_environment_variable_is_a_warning(monkeypatch, capsys):
    """It may name a plugin uninstalled since: every command must not stop for it."""
    monkeypatch.setenv("LATENTKIT_DISABLE_PLUGINS", "uninstalled_long_ago")
    assert cli_main(["plugins"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "'uninstalled_long_ago'" in err and "ignored" in err


# --- couplings between run-time plugins are hooks, not shared state or order -----------------------------------------
@pytest.mark.parametrize("order", ["logging_first", "figures_first"])
def test_training_figures_reach_tensorboard_whatever_the_plugin_order(order, tmp_path, two_channel_model):
    """training_figures calls latentkit_log_images; run_logging writes the images and closes its writer after every
    other latentkit_run_end (a wrapper), so the figure drawn at the end of a run is logged in either order."""
    from latentkit_plugins import run_logging, training_figures
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pair = [("run_logging", run_logging), ("training_figures", training_figures)]
    host = PluginHost(entry_points=False, plugins=dict(pair if order == "logging_first" else pair[::-1]))
    run = types.SimpleNamespace(
        directory=tmp_path, config={"experiment": {"train": {"figures_every": 100}}}, model=two_channel_model,
        plugin_state={}, resumed_from=None, quiet=True, step=7, total_steps=7, hooks=host.hook,
    )
    host.hook.latentkit_run_start(run=run)
    host.hook.latentkit_step_end(run=run, step=7, scalars={"loss": 1.0})
    host.hook.latentkit_run_end(run=run, status="completed")  # training_figures draws its final figure here
    assert run.plugin_state.get("tensorboard") is None  # closed
    events = EventAccumulator(str(tmp_path / run_logging.TENSORBOARD_DIR))
    events.Reload()
    images = events.Images("traversals")
    assert [image.step for image in images] == [7] and images[0].width > 0 and images[0].height > 0
    assert [s.step for s in events.Scalars("loss")] == [7]
    assert (tmp_path / training_figures.FOLDER / "traversals-step-00000007.png").is_file()


# --- the core imports no concrete plugin ----------------------------------------------------------------------------
def test_core_imports_no_concrete_plugin_at_run_time():
    """Importing the core modules in a fresh interpreter loads no module of latentkit_plugins or recipes."""
    code = (
        "import json, sys\n"
        "import latentkit.core, latentkit.assembly.build, latentkit.specs, latentkit.assembly.checkpoint, latentkit.testing\n"
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
