"""The assembly layer: the one place where names become objects.

Recipes and ``--set`` overrides (:mod:`~latentkit.assembly.recipe`), building the models, objectives and data sets that
the plain-data specs of :mod:`latentkit.specs` name, from the plugin registry
(:mod:`~latentkit.assembly.build`, :mod:`~latentkit.assembly.datasets`), checkpoint folders
(:mod:`~latentkit.assembly.checkpoint`), starting and resuming runs (:mod:`~latentkit.assembly.session`), evaluation
(:mod:`~latentkit.assembly.evaluate`) and sweeps (:mod:`~latentkit.assembly.sweep`).

It sits above the trainer (:mod:`latentkit.train`), which imports none of it: the trainer is handed a task, data and its
own :class:`~latentkit.train.config.TrainConfig`.
"""
