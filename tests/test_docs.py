"""The documentation site builds without a warning, and its CLI reference and navigation match the code.

One strict ``mkdocs build`` per session (about 5-25 s on 2 cores), shared by the tests below.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs tools are not installed: pip install -e '.[docs]' (or the dev extra)")
yaml = pytest.importorskip("yaml", reason="PyYAML (a dependency of mkdocs) is not installed")

from latentkit.cli import build_parser  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _gen_cli():
    spec = importlib.util.spec_from_file_location("latentkit_docs_gen_cli", DOCS / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_pages(nav) -> list[str]:
    """Every page path in mkdocs.yml's nav (nested sections included)."""
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            pages += _nav_pages(value)
        elif isinstance(value, str) and not value.startswith(("http://", "https://")):
            pages.append(value)
    return pages


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _page(site: Path, md: str) -> Path:
    """Where MkDocs (use_directory_urls) writes the HTML of ``md``."""
    stem = Path(md[: -len(".md")])
    return site / (stem.parent if stem.name == "index" else stem) / "index.html"


def test_every_nav_page_exists_and_is_built(site):
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    assert "cli.md" in pages and "index.md" in pages
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"pages in mkdocs.yml's nav that docs/ does not have: {missing}"
    unbuilt = [p for p in pages if not _page(site, p).is_file()]
    assert not unbuilt, f"nav pages the build did not write: {unbuilt}"


def test_every_page_is_in_the_nav_or_named_in_mkdocs_yml():
    """No orphan pages: a page in docs/ is in the nav, or (a guide waiting for its nav entry) named in mkdocs.yml."""
    text = (ROOT / "mkdocs.yml").read_text()
    pages = set(_nav_pages(yaml.safe_load(text)["nav"]))
    orphans = [
        rel for rel in (p.relative_to(DOCS).as_posix() for p in sorted(DOCS.rglob("*.md")))
        if rel not in pages and rel not in text
    ]
    assert not orphans, f"pages in docs/ that mkdocs.yml's nav does not reach: {orphans}"


def test_cli_reference_lists_every_subcommand_and_option(site):
    text = html.unescape((site / "cli" / "index.html").read_text())
    commands = _gen_cli().subcommands(build_parser())
    assert {"train", "evaluate", "plugins"} <= set(commands)
    for name, (sub, _help) in commands.items():
        assert f'id="latentkit-{name}"' in text, f"the CLI reference has no section for `latentkit {name}`"
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert option in text, f"the CLI reference does not mention `latentkit {name} {option}`"
    assert "<!-- cli-reference -->" not in text, "the generated reference was not inserted"


def test_generator_follows_the_parser():
    """A subcommand added to the parser appears in the reference with no change to the docs."""
    gen = _gen_cli()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.add_parser("frobnicate", help="a subcommand added after the docs were written",
                       description="Writes <name>.json; see `a|b`.")
    p.add_argument("target", help="what to frobnicate")
    p.add_argument("--level", type=int, default=3, help="how hard")
    p.add_argument("--tag", action="append", help="a tag")
    p.add_argument("--mode", help="`x|y` or x|y")
    text = gen.render(parser)
    assert "## latentkit frobnicate { #latentkit-frobnicate }" in text
    assert "[`frobnicate`](#latentkit-frobnicate)" in text
    assert "Writes &lt;name&gt;.json; see `a|b`." in text  # HTML escaped outside code, code spans kept
    assert "| `--level LEVEL` | how hard (default `3`) |" in text
    assert "| `--tag TAG` | a tag (repeatable) |" in text
    assert "| `target` | what to frobnicate |" in text
    assert "| `--mode MODE` | `x|y` or x\\|y |" in text  # a bar splits a table row outside code spans only


def test_no_page_repeats_a_heading():
    """A repeated heading is usually a section pasted twice (it happened once in results.md); it also gives two
    sections one anchor name, so a link to the second lands on the first."""
    import re
    from collections import Counter

    repeats = {}
    for page in sorted(DOCS.rglob("*.md")):
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # comments in code blocks are not headings
        seen = [h for h, n in Counter(re.findall(r"^#{1,6} .+$", text, flags=re.M)).items() if n > 1]
        if seen:
            repeats[page.relative_to(DOCS).as_posix()] = sorted(seen)
    assert not repeats, f"headings that appear twice in one page: {repeats}"
