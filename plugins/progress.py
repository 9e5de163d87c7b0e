"""Progress display: a tqdm bar with ETA, the loss, each channel's KL and capacity.

Without a terminal (CI, nohup) it prints a plain line at every tenth of the run instead.
"""

from __future__ import annotations

import sys
import time

from latentkit.plugins import hookimpl


def _summary(scalars: dict) -> dict:
    out = {"loss": f"{scalars.get('objective', scalars.get('loss', float('nan'))):.2f}"}
    for name, value in scalars.items():
        if name.startswith("kl/") and name != "kl/total":
            channel = name[3:]
            cap = scalars.get(f"capacity/{channel}")
            out[f"kl_{channel}"] = f"{value:.2f}" + (f"/{cap:.2f}" if cap is not None else "")
    return out


@hookimpl
def latentkit_run_start(run):
    if run.quiet:
        return
    start = run.resumed_from or 0
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=run.total_steps, initial=start, unit="step", dynamic_ncols=True, desc=run.directory.name)
        run.plugin_state["progress"] = bar
    else:
        run.plugin_state["progress_plain"] = {"start": start, "t0": time.monotonic(), "next": 0}


@hookimpl
def latentkit_step_end(run, step, scalars):
    bar = run.plugin_state.get("progress")
    if bar is not None:
        bar.update(step - bar.n)
        bar.set_postfix(_summary(scalars), refresh=False)
        return
    plain = run.plugin_state.get("progress_plain")
    if plain is None:
        return
    done = (step - plain["start"]) / max(1, run.total_steps - plain["start"])
    if done >= plain["next"] / 10:
        elapsed = time.monotonic() - plain["t0"]
        eta = elapsed / done * (1 - done) if done > 0 else float("nan")
        fields = " ".join(f"{k}={v}" for k, v in _summary(scalars).items())
        print(f"step {step}/{run.total_steps} ({done:.0%}) {fields} elapsed {elapsed:.0f}s eta {eta:.0f}s", file=sys.stderr)
        plain["next"] = int(done * 10) + 1


@hookimpl
def latentkit_run_end(run, status):
    bar = run.plugin_state.pop("progress", None)
    if bar is not None:
        bar.update(run.step - bar.n)
        bar.close()
    run.plugin_state.pop("progress_plain", None)
