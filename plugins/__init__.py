"""latentkit's built-in plugins (installed as the import package ``latentkit_plugins``).

Each module is registered through the ``latentkit`` entry-point group in ``pyproject.toml``, exactly as a
third-party plugin would be; the core never imports them.
"""
