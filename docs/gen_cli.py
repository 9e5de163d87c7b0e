"""The CLI reference, generated from ``latentkit.cli.build_parser()`` so that it cannot drift from the code.

Two uses:

* an MkDocs hook (``hooks:`` in ``mkdocs.yml``): when the site is built, the line ``<!-- cli-reference -->`` in
  ``docs/cli.md`` is replaced with one section per subcommand that the parser has at that moment — a subcommand added
  to the parser appears in the next build without anyone touching the docs;
* ``python docs/gen_cli.py`` prints the same Markdown (to read it, or to diff it).
"""

from __future__ import annotations

import argparse
import re

MARKER = "<!-- cli-reference -->"
PAGE = "cli.md"


def _escape(text: str, table: bool = False) -> str:
    """Escape HTML (help strings say ``<metric>.json``) and, in a table cell, the column bar — outside backtick code
    spans only: code spans stay as written (Python-Markdown's tables do not split a row inside one)."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if table:
            parts[i] = parts[i].replace("|", "\\|")
    return "".join(parts)


def _cell(text: str) -> str:
    return _escape(" ".join(text.split()), table=True)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help string as ``--help`` prints it (``%(default)s`` and friends expanded)."""
    if not action.help:
        return ""
    formatter = parser._get_formatter()
    try:
        return formatter._expand_help(action)
    except (AttributeError, KeyError, TypeError, ValueError):  # a private API; fall back to the raw text
        return action.help


def _names(action: argparse.Action) -> str:
    if action.option_strings:
        takes_value = action.nargs != 0
        metavar = ""
        if takes_value:
            if action.metavar is not None:
                metavar = action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
            elif action.choices is not None:
                metavar = "{" + ",".join(map(str, action.choices)) + "}"
            else:
                metavar = action.dest.upper()
        return ", ".join(f"`{opt}{' ' + metavar if metavar else ''}`" for opt in action.option_strings)
    name = action.metavar if isinstance(action.metavar, str) else action.dest
    return f"`{name}`"


def _details(action: argparse.Action, text: str) -> str:
    """What ``--help`` leaves implicit: required, repeatable, the choices of a positional, the default."""
    notes = []
    if action.required and action.option_strings:
        notes.append("required")
    if action.option_strings and isinstance(action, argparse._AppendAction):
        if "repeatable" not in text:
            notes.append("repeatable")
    elif action.nargs in ("+", "*"):
        notes.append("one or more" if action.nargs == "+" else "any number")
    if action.choices is not None and not action.option_strings:
        notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.nargs == "?" and not action.option_strings:
        notes.append("optional")
    shown = action.default not in (None, False, [], argparse.SUPPRESS) and action.nargs != 0
    if shown and "default" not in text:
        notes.append(f"default `{action.default}`")
    return "; ".join(notes)


def _arguments_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        text = _help(parser, action)
        extra = _details(action, text)
        if extra:
            text = f"{text} ({extra})" if text else extra
        rows.append(f"| {_names(action)} | {_cell(text)} |")
    if not rows:
        return []
    return ["| argument | meaning |", "| --- | --- |", *rows, ""]


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage line, wrapped at a fixed width (not the terminal's, so that every build gives the same page)."""
    formatter = parser.formatter_class(prog=parser.prog, width=100)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def subcommands(parser: argparse.ArgumentParser | None = None) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """Every subcommand of the parser: ``{name: (subparser, one-line help)}``, in the parser's order."""
    if parser is None:
        from latentkit.cli import build_parser

        parser = build_parser()
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                out[name] = (sub, helps.get(name, ""))
    return out


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference as Markdown: the global options, then a section per subcommand."""
    if parser is None:
        from latentkit.cli import build_parser

        parser = build_parser()
    commands = subcommands(parser)
    lines = [
        "## Global options",
        "",
        "```text",
        _usage(parser),
        "```",
        "",
        *_arguments_table(parser),
        "| command | what it does |",
        "| --- | --- |",
        *(f"| [`{name}`](#latentkit-{name}) | {_cell(short)} |" for name, (_, short) in commands.items()),
        "",
    ]
    for name, (sub, short) in commands.items():
        lines += [f"## latentkit {name} {{ #latentkit-{name} }}", ""]
        description = sub.description or (short[:1].upper() + short[1:] + "." if short else "")
        if description:
            lines += [_escape(" ".join(description.split())), ""]
        lines += ["```text", _usage(sub), "```", ""]
        lines += _arguments_table(sub)
    return "\n".join(lines)


# --- the MkDocs hook --------------------------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs' hook signature
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE} lost its {MARKER} line: the generated CLI reference has nowhere to go")
    return markdown.replace(MARKER, render())


if __name__ == "__main__":
    print(render())
