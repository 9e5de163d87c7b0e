"""The ``latentkit`` command: every subcommand, on top of the assembly layer."""

from latentkit.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
