"""The trainer's two examples (a plain autoencoder; a VAE with an objective written from scratch) run through the
public API, resume bit-identically, call their hooks; docs/trainer.md quotes them as they are."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["examples/trainer/autoencoder.py", "examples/trainer/vae.py"]


def run_example(path: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / path), "--out", str(out), "--steps", "40"], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)


def test_autoencoder_example_trains_resumes_and_calls_its_hook(tmp_path):
    proc = run_example(EXAMPLES[0], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit for bit" in proc.stdout
    assert "resumed: resumed at step 20" in proc.stdout
    losses = [float(x) for x in re.findall(r"straight: step +\d+ +loss ([0-9.]+)", proc.stdout)]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert (tmp_path / "straight" / "final" / "model.safetensors").is_file()


def test_vae_example_trains_resumes_and_calls_its_hooks(tmp_path):
    proc = run_example(EXAMPLES[1], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bit for bit" in proc.stdout
    straight = (tmp_path / "straight" / "kl.csv").read_text().split()
    assert [line.split(",")[0] for line in straight] == ["10", "20", "30", "40"]
    # the resumed run logged steps 10..20, then 30..40 after resuming: the same values as the uninterrupted run
    assert (tmp_path / "resumed" / "kl.csv").read_text().split() == straight
    assert proc.stdout.count("completed at step") == 3


@pytest.mark.parametrize("path", EXAMPLES)
def test_the_trainer_guide_quotes_each_example_as_it_is(path):
    """docs/trainer.md shows each example in a python block after a marker ``<!-- example: PATH -->``."""
    doc = (ROOT / "docs" / "trainer.md").read_text()
    match = re.search(rf"<!-- example: {re.escape(path)} -->\s*```python\n(.*?)```", doc, re.S)
    assert match, f"docs/trainer.md has no quoted block for {path}"
    assert match.group(1) == (ROOT / path).read_text(), f"docs/trainer.md's copy of {path} is out of date"
