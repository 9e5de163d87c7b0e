"""latentkit: a plugin-based PyTorch framework for joint latent distributions (first model: JointVAE)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("latentkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
