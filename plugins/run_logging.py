"""Run logging: ``metrics.jsonl`` (every logged scalar with its step) and TensorBoard event files.

On resume, lines logged after the checkpoint the run resumes from are dropped, so the file of a resumed run equals that
of an uninterrupted one.

Images reach TensorBoard through the ``latentkit_log_images`` hook, which any plugin may call (``training_figures``
does); the files are closed by a wrapper of ``latentkit_run_end``, after every other plugin's ``latentkit_run_end``
ran — so a figure drawn at the end of a run is logged whatever order the plugins were registered in.
"""

from __future__ import annotations

import json

from latentkit.plugins import hookimpl

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def _truncate_after(path, step: int) -> None:
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by a crash
    path.write_text("".join(f"{line}\n" for line in kept))


@hookimpl
def latentkit_run_start(run):
    path = run.directory / METRICS_FILE
    _truncate_after(path, run.resumed_from or 0)
    run.plugin_state["metrics_jsonl"] = open(path, "a", buffering=1)  # noqa: SIM115 - closed at run end
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but keep training if it is broken
        return
    run.plugin_state["tensorboard"] = SummaryWriter(
        log_dir=str(run.directory / TENSORBOARD_DIR), purge_step=(run.resumed_from or 0) + 1
    )


@hookimpl
def latentkit_step_end(run, step, scalars):
    fh = run.plugin_state.get("metrics_jsonl")
    if fh is not None:
        fh.write(json.dumps({"step": step, **scalars}) + "\n")
    writer = run.plugin_state.get("tensorboard")
    if writer is not None:
        for name, value in scalars.items():
            writer.add_scalar(name, value, step)


@hookimpl
def latentkit_log_images(run, step, images):
    writer = run.plugin_state.get("tensorboard")
    if writer is not None:
        for tag, image in images.items():
            writer.add_image(tag, image, step, dataformats="CHW")


@hookimpl(wrapper=True)
def latentkit_run_end(run, status):
    """Close the files after every other plugin's ``latentkit_run_end`` (which may still log), even if one raised."""
    try:
        return (yield)
    finally:
        _close(run)


def _close(run) -> None:
    fh = run.plugin_state.pop("metrics_jsonl", None)
    if fh is not None:
        fh.close()
    writer = run.plugin_state.pop("tensorboard", None)
    if writer is not None:
        writer.close()
