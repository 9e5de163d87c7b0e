"""User-facing errors.

Every error a user can cause (bad configuration, unknown plugin name, missing data, broken checkpoint) is a
:class:`LatentkitError`. Its message is one paragraph that says what is wrong and how to fix it; the CLI prints it
without a traceback. Anything else escaping is a bug in latentkit.
"""

from __future__ import annotations


class LatentkitError(Exception):
    """Base class of errors caused by input, configuration or environment rather than by a bug."""

    #: the CLI's exit status for this error
    exit_code = 2


class ConfigError(LatentkitError, ValueError):
    """A configuration value is invalid (wrong type, out of range, inconsistent with another value)."""


class UnknownNameError(LatentkitError, KeyError):
    """A plugin name (family, network, schedule, objective, dataset, metric) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginError(LatentkitError):
    """A plugin is malformed: a misspelt hook, a duplicate name, a hook that raised."""


class CheckpointError(LatentkitError):
    """A checkpoint folder is missing, corrupt, or does not match the model it should load into."""


class DataError(LatentkitError):
    """A data set is missing or malformed."""
