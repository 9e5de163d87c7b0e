"""One self-contained HTML page per model folder: configuration, metrics, curves and every figure, readable offline.

Images are embedded (``data:`` URIs), so the page can be mailed or archived alone; each one also links to its file in
``figures/`` beside the page for full-size viewing. Nothing is fetched from the network (no scripts, no web fonts).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from latentkit._atomic import write_bytes
from latentkit.viz.figures import Figure
from latentkit.viz.source import FigureSource

REPORT_FILE = "report.html"
_MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 2px 8px; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; } pre { background: #f8f8f8; padding: 0.5em; overflow-x: auto; }
.notice { color: #8a5a00; }
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _table(rows: Sequence[tuple[str, Any]], header: tuple[str, str] = ("", ""), numeric: bool = True) -> str:
    cls = " class='num'" if numeric else ""
    head = f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>" if any(header) else ""
    body = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td{cls}>{html.escape(_fmt(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{head}{body}</table>"


def _evaluations(folders: Sequence[Path]) -> list[tuple[str, dict]]:
    found: dict[str, dict] = {}
    for folder in folders:
        for path in sorted((folder / "evaluation").glob("*.json")):
            try:
                found.setdefault(path.stem, json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
    return sorted(found.items())


def _evaluation_html(name: str, data: dict) -> str:
    results = data.get("results", {})
    scalars = [(k, v) for k, v in results.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    parts = [f"<h3>{html.escape(name)}</h3>", _table(scalars, ("result", "value")) if scalars else ""]
    for key, value in results.items():
        if isinstance(value, dict) and value and all(isinstance(v, (int, float)) for v in value.values()):
            parts.append(f"<p>{html.escape(key)}</p>" + _table(list(value.items())))
    if data.get("options"):
        parts.append(f"<p>options: <code>{html.escape(json.dumps(data['options']))}</code></p>")
    return "".join(parts)


def _figure_html(figure: Figure, page_dir: Path) -> str:
    path = Path(figure.path)
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    try:
        href = os.path.relpath(path, page_dir)
    except ValueError:  # another drive
        href = str(path)
    return (
        f"<figure><a href='{html.escape(href)}'><img alt='{html.escape(path.name)}' src='data:{mime};base64,{data}'>"
        f"</a><figcaption><b>{html.escape(path.name)}</b>: {html.escape(figure.caption)}</figcaption></figure>"
    )


def _dataset_facts(source: FigureSource) -> list[tuple[str, object]]:
    """The data set the figures read, and the one the model was trained on where the command line gave another."""
    recorded = source.config.get("dataset") or {}
    trained = [("data set", recorded.get("name")), ("data set options", json.dumps(recorded.get("options", {})))]
    if source.dataset is None:
        return trained
    return [("data set (figures)", source.dataset.name),
            ("data set options (figures)", json.dumps(source.dataset.options)),
            *((f"{key} (training)", value) for key, value in trained)]


def write_report(
    source: FigureSource, figures: Sequence[Figure], out: str | os.PathLike | None = None
) -> Path:
    """Write the report of ``source`` with ``figures`` (already written files); returns the page's path."""
    out = Path(out) if out is not None else source.folder / REPORT_FILE
    page_dir = out.parent
    title = f"latentkit report: {source.name}"
    sections = [f"<h1>{html.escape(title)}</h1>"]
    facts = [
        ("folder", str(source.folder.resolve())),
        ("checkpoint", str(source.checkpoint.resolve())),
        ("step", source.step),
        *_dataset_facts(source),
        ("channels", ", ".join(f"{c['name']}: {c['family']} {json.dumps(c.get('options', {}))}"
                               for c in source.config.get("model", {}).get("channels", []))),
        ("written", _dt.datetime.now().isoformat(timespec="seconds")),
    ]
    if source.config.get("imported_from"):
        facts.append(("imported from", source.config["imported_from"].get("source")))
    sections.append(_table(facts, numeric=False))
    if source.metrics_file is not None:
        from latentkit.viz.plots import read_metrics

        last = read_metrics(source.metrics_file)[-1]
        sections.append(f"<h2>Training at step {last['step']}</h2>")
        sections.append(_table([(k, v) for k, v in last.items() if k != "step" and not k.startswith("kl_unit/")],
                               ("scalar", "last logged value")))
    evaluations = _evaluations(list(dict.fromkeys([source.folder, source.checkpoint])))
    sections.append("<h2>Evaluation</h2>")
    if evaluations:
        sections.extend(_evaluation_html(name, data) for name, data in evaluations)
    else:
        sections.append("<p>No evaluation results yet: run <code>latentkit evaluate FOLDER --metric ...</code>.</p>")
    sections.append("<h2>Figures</h2>")
    sections.extend(_figure_html(f, page_dir) for f in figures)
    if source.notices:
        sections.append("<h2>Notes</h2><ul>" + "".join(
            f"<li class='notice'>{html.escape(n)}</li>" for n in dict.fromkeys(source.notices)) + "</ul>")
    sections.append("<h2>Configuration</h2>")
    sections.append(f"<pre>{html.escape(json.dumps(source.config, indent=2))}</pre>")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
    write_bytes(out, page.encode("utf-8"))
    return out
