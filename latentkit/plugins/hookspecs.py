"""Every hook a latentkit plugin can implement, in one module.

Each hook hands the plugin a registry to add to (tox 4's way), so a plugin says *what* it provides and the registry
records *who* provided it. Built-in plugins use exactly these hooks and are found through the same ``latentkit``
entry-point group as third-party ones::

    # in a third-party package's pyproject.toml
    [project.entry-points.latentkit]
    vonmises = "my_package.vonmises_plugin"

    # my_package/vonmises_plugin.py
    from latentkit.plugins import hookimpl

    @hookimpl
    def latentkit_register_families(registry):
        registry.add("vonmises", VonMisesFamily)

A function named ``latentkit_...`` that matches no hook below (a misspelt hook), or an implementation taking an
argument its hook does not give, makes the plugin *malformed*: it is never silently half-used. As a plugin that cannot
be imported or whose registration hook raises, it is left out whole and reported (:class:`~latentkit.plugins.PluginHost`
records it in ``failures``); ``latentkit plugins`` and ``latentkit check-plugin`` list it and exit with status 1, so
its author notices, while commands that do not need it keep working. A plugin registered in code
(``register_plugin``) raises :class:`~latentkit.errors.PluginError` at once instead.

Plugins talk to each other only through hooks, never through shared state or the order they run in: a plugin that
produces something another may record (a figure) *calls* a hook for it through the run's hook relay (``run.hooks``),
and whoever records it implements that hook (``latentkit_log_images`` below: ``training_figures`` calls it,
``run_logging`` writes the images to TensorBoard). A plugin that must act after every other implementation of a hook
says so with ``@hookimpl(wrapper=True)`` (``run_logging`` closes its files after every other ``latentkit_run_end``).
"""

from __future__ import annotations

import pluggy

PROJECT = "latentkit"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def latentkit_register_families(registry):
    """Add latent families: ``registry.add(name, LatentFamily subclass)``.

    The class is built with a channel's options as keyword arguments; its methods follow the contract of
    :class:`~latentkit.core.LatentFamily` (the row rule for ``rsample``, zero features give the prior, ``neutral_value``
    the prior's representative), which ``latentkit check-plugin NAME`` checks."""


@hookspec
def latentkit_register_networks(registry):
    """Add networks: ``registry.add(name, NetworkFamily subclass)``, built with the network's own options as keyword
    arguments (no ``**kwargs`` needed: no other plugin's settings reach it)."""


@hookspec
def latentkit_register_schedules(registry):
    """Add capacity schedules: ``registry.add(name, CapacitySchedule subclass)``, built with its options; a schedule
    is a pure function of the step."""


@hookspec
def latentkit_register_objectives(registry):
    """Add objectives: ``registry.add(name, factory)``, a function or class returning an
    :class:`~latentkit.core.Objective`.

    The factory is called with the objective's own options as keyword arguments and, of the context values ``latent``,
    ``image_shape``, ``registry`` and ``dataset_size``, only those its signature names
    (:func:`latentkit.plugins.factories.call_factory`); an option it does not declare is a ConfigError. An objective
    built on another gets it from ``registry.build_objective`` or ``registry.extend_objective``."""


@hookspec
def latentkit_register_datasets(registry):
    """Add data sets: ``registry.add(name, DatasetProvider subclass)``, built with the data set's options."""


@hookspec
def latentkit_register_metrics(registry):
    """Add evaluation metrics: ``registry.add(name, callable)``, called as ``metric(model, data, batch_size=,
    device=, **options)`` and returning ``{name: float}``; optional attributes ``needs_ground_truth`` (it then receives
    ``ground_truth=``), ``needs_data`` and ``options`` (``{name: default}``)."""


# --- run-time hooks: the trainer calls these; logging, progress, visuals and metrics implement them --------------------
# Each receives the :class:`latentkit.train.run.Run` (a read-only view of the run: directory, config, step, model) so a
# plugin never reaches into the trainer's internals. An implementation may take any subset of a hook's arguments, by
# name, and must not depend on the order plugins run in.


@hookspec
def latentkit_run_start(run):
    """A run starts (or resumes: ``run.resumed_from`` is the checkpoint's step, else ``None``)."""


@hookspec
def latentkit_step_end(run, step, scalars):
    """Logged scalars (``{name: float}``) at a logging step (every ``log_every`` steps and the last one)."""


@hookspec
def latentkit_evaluate(run, step):
    """An evaluation point (every ``eval_every`` steps and at the end); the model is in eval mode during the call."""


@hookspec
def latentkit_checkpoint(run, step, folder):
    """A checkpoint was written to ``folder`` (already complete and valid)."""


@hookspec
def latentkit_run_end(run, status):
    """The run ends; ``status`` is "completed", "interrupted" or "failed"."""


@hookspec
def latentkit_log_images(run, step, images):
    """Images made at ``step`` for the run's logs: ``{tag: uint8 Tensor of shape (3, H, W)}`` (RGB).

    Called by plugins, not by the trainer: a plugin that draws a figure (``training_figures``) calls it through the
    run's hook relay, ``run.hooks.latentkit_log_images(run=run, step=step, images=...)``; a logger (``run_logging``:
    TensorBoard) implements it. Neither knows about the other, and either may be absent. Called between
    ``latentkit_run_start`` and the end of ``latentkit_run_end``.
    """
