"""MkDocs hook: show the reST cross-reference roles of latentkit's docstrings as plain code on the API pages.

The docstrings are written for ``help()`` and editors, in the reST habit: ``:class:`JointLatent```,
``:meth:`~latentkit.core.LatentFamily.kl```. Rendered as Markdown they come out as ``:class:`` followed by code; this
drops the role and, as Sphinx does, shortens a ``~``-prefixed path to its last name.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const):(<code>)(~?)([^<]*)(</code>)")


def _replace(match: re.Match) -> str:
    opening, tilde, target, closing = match.groups()
    if tilde:
        target = target.rsplit(".", 1)[-1]
    return f"{opening}{target}{closing}"


def on_page_content(html: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs' hook signature
    if not page.file.src_uri.startswith("api/"):
        return html
    return _ROLE.sub(_replace, html)
