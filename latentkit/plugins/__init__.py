"""latentkit's plugin system (pluggy): hook specifications, the plugin host, and the registries it fills.

:class:`PluginHost` owns one set of plugins (entry points of group ``latentkit`` plus plugins registered in code, less
blocked ones), the pluggy manager holding them, the registry they fill and the broken plugins it left out.
:func:`default_host` is the process's; the functions below act on it.
"""

import pluggy

from latentkit.plugins.hookspecs import PROJECT

hookimpl = pluggy.HookimplMarker(PROJECT)

from latentkit.plugins.manager import (
    DISABLE_ENV,
    PluginFailure,
    PluginHost,
    PluginWarning,
    block_plugin,
    default_host,
    get_plugin_manager,
    get_registry,
    register_plugin,
    unblock_plugin,
    unregister_plugin,
    use_host,
)
from latentkit.plugins.registry import Registry

__all__ = [
    "DISABLE_ENV",
    "PluginFailure",
    "PluginHost",
    "PluginWarning",
    "Registry",
    "block_plugin",
    "default_host",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "register_plugin",
    "unblock_plugin",
    "unregister_plugin",
    "use_host",
]
