"""latentkit's plugin system (pluggy): hook specifications, the manager, and the registries it fills."""

import pluggy

from latentkit.plugins.hookspecs import PROJECT

hookimpl = pluggy.HookimplMarker(PROJECT)

from latentkit.plugins.manager import (  # noqa: E402
    block_plugin,
    get_plugin_manager,
    get_registry,
    register_plugin,
    unblock_plugin,
    unregister_plugin,
)
from latentkit.plugins.registry import Registry  # noqa: E402

__all__ = [
    "Registry",
    "block_plugin",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "register_plugin",
    "unblock_plugin",
    "unregister_plugin",
]
