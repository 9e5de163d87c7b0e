"""Warn when a latent channel meets its capacity without carrying information about the input.

The capacity term γ·|KL − C| can be met by moving one input-independent posterior away from the prior: the KL then
follows the capacity while every input gets the same code, and the decoder learns only the mean image. With the
paper's γ and capacity ramps compressed into a short run this happened on dSprites (docs/results.md: JointVAE with
γ = 150, 0 → 40 nats over 17,361 steps; the annealed β-VAE with γ = 1000). Nothing in the loss curve says so; the
``spread/<channel>`` the jointvae objective logs does: the batch variance of the channel's deterministic code.

A channel is flagged at a logging step when its KL is above ``MIN_KL`` nats and its spread below ``MAX_SPREAD``; after
``PATIENCE`` flagged logging steps in a row one warning per channel goes to stderr (also in ``--quiet`` runs: it is
about the result, not progress). The run goes on — a channel can recover, and the user decides.
"""

from __future__ import annotations

import sys

from latentkit.plugins import hookimpl

#: nats of KL above which an input-independent code is suspicious (an unused channel has KL near 0 and is fine)
MIN_KL = 0.5
#: summed batch variance of the channel's code below which it is taken as the same for every input
MAX_SPREAD = 1e-3
#: consecutive flagged logging steps before the warning
PATIENCE = 5


def collapsed_channels(scalars: dict) -> list[str]:
    """Channels whose logged KL exceeds :data:`MIN_KL` while their ``spread`` is below :data:`MAX_SPREAD`."""
    out = []
    for key, spread in scalars.items():
        if key.startswith("spread/"):
            channel = key[len("spread/"):]
            if scalars.get(f"kl/{channel}", 0.0) > MIN_KL and spread < MAX_SPREAD:
                out.append(channel)
    return out


@hookimpl
def latentkit_step_end(run, step, scalars):
    state = run.plugin_state.setdefault("collapse_watch", {"streak": {}, "warned": set()})
    flagged = set(collapsed_channels(scalars))
    for channel in list(state["streak"]):
        if channel not in flagged:
            state["streak"].pop(channel)
    for channel in flagged:
        state["streak"][channel] = state["streak"].get(channel, 0) + 1
        if state["streak"][channel] == PATIENCE and channel not in state["warned"]:
            state["warned"].add(channel)
            print(
                f"latentkit train: warning: at step {step} channel {channel!r} has KL {scalars[f'kl/{channel}']:.2f} "
                f"nats but gives every input the same code (batch variance {scalars[f'spread/{channel}']:.1e}): it "
                f"meets its capacity without carrying information. A γ too large for how fast the capacity rises "
                f"does this; lower γ or ramp the capacity more slowly (docs/training.md).",
                file=sys.stderr, flush=True,
            )
