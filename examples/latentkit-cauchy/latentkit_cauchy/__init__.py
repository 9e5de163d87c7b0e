"""latentkit-cauchy: a Cauchy latent family for latentkit, as an example of a third-party plugin package.

latentkit finds it through the ``latentkit`` entry-point group (see this package's ``pyproject.toml``); nothing here
needs importing by hand.
"""

from latentkit_cauchy.plugin import Cauchy

__all__ = ["Cauchy"]
__version__ = "0.1.0"
