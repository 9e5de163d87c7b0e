"""Training-run figures: reading metrics.jsonl, the KL curves (Fig. 7a), the KL ranking (Fig. 7b), first-rise steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from latentkit.errors import ConfigError
from latentkit.viz.plots import (
    kl_channels,
    kl_curves_figure,
    kl_ranking_figure,
    kl_rise_steps,
    plot_kl_curves,
    plot_kl_ranking,
    read_metrics,
)


def _history(steps=range(0, 1000, 100)) -> list[dict]:
    """Two channels: 'z' with 11 units rising one after another, 'bern' with one unit clipped at log 2."""
    recs = []
    for s in steps:
        rec = {"step": s, "recon": 100.0 - s / 100}
        units = {f"z.{i}": max(0.0, (s - 100 * i) / 500) for i in range(11)}
        rec["kl/z"] = sum(units.values())
        rec["capacity/z"] = rec["capacity_target/z"] = s / 200
        rec.update({f"kl_unit/{u}": v for u, v in units.items()})
        rec["kl/bern"] = rec["kl_unit/bern.0"] = min(s / 1000, 0.69)
        rec["capacity_target/bern"] = s / 500
        rec["capacity/bern"] = min(s / 500, 0.6931)
        rec["kl/total"] = rec["kl/z"] + rec["kl/bern"]
        recs.append(rec)
    return recs


def _write(path, lines) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_read_metrics_skips_cut_lines_sorts_and_later_line_wins(tmp_path):
    _write(tmp_path / "metrics.jsonl", [
        json.dumps({"step": 20, "loss": 2.0}),
        json.dumps({"step": 10, "loss": 1.0}),
        "",
        json.dumps({"step": 20, "loss": 3.0}),  # resumed run logs step 20 again: this one wins
        "[1, 2]",
        '{"step": 30, "loss": 4.',  # cut by a crash
    ])
    for source in (tmp_path, tmp_path / "metrics.jsonl", str(tmp_path)):
        recs = read_metrics(source)
        assert [r["step"] for r in recs] == [10, 20]
        assert [r["loss"] for r in recs] == [1.0, 3.0]


def test_read_metrics_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"no metrics\.jsonl.*train a run first"):
        read_metrics(tmp_path)
    _write(tmp_path / "metrics.jsonl", ['{"step": 1, "lo'])
    with pytest.raises(ConfigError, match="no valid record"):
        read_metrics(tmp_path)


def test_kl_channels_finds_channels_and_units_in_numeric_order():
    channels = kl_channels(_history())
    assert list(channels) == ["z", "bern"]
    assert channels["z"] == [f"z.{i}" for i in range(11)]  # z.10 after z.9, not after z.1
    assert channels["bern"] == ["bern.0"]
    assert "total" not in channels


def test_kl_curves_figure_panels_lines_and_capacity():
    recs = _history()
    fig = kl_curves_figure(recs, title="run")
    assert len(fig.axes) == 2
    z_ax, b_ax = fig.axes
    z_lines = {line.get_label(): line for line in z_ax.get_lines()}
    assert set(z_lines) == {f"z.{i}" for i in range(11)} | {"total", "capacity"}  # target equals capacity: not drawn
    steps = [r["step"] for r in recs]
    np.testing.assert_allclose(z_lines["capacity"].get_xdata(), steps)
    np.testing.assert_allclose(z_lines["capacity"].get_ydata(), [r["capacity/z"] for r in recs])
    np.testing.assert_allclose(z_lines["z.10"].get_ydata(), [r["kl_unit/z.10"] for r in recs])
    assert z_lines["total"].get_linewidth() > z_lines["z.0"].get_linewidth()
    assert z_lines["capacity"].get_linestyle() == "--"
    # z.0 has the largest final KL: coloured; z.10 never rises: light grey
    assert z_lines["z.0"].get_color() != z_lines["z.1"].get_color()
    assert z_lines["z.10"].get_color() == "#c8c8c8"
    b_lines = {line.get_label(): line for line in b_ax.get_lines()}
    assert set(b_lines) == {"bern.0", "total", "capacity", "capacity target"}
    target = b_lines["capacity target"]
    assert target.get_linestyle() == ":"
    y = np.asarray(target.get_ydata(), dtype=float)
    clipped = np.array([r["capacity_target/bern"] > r["capacity/bern"] for r in recs])
    np.testing.assert_allclose(y[clipped], [r["capacity_target/bern"] for r, c in zip(recs, clipped) if c])
    assert np.isnan(y[:2]).all()  # equal to capacity there (and not next to a clipped step): not drawn


def test_kl_curves_log_scale_and_empty_history():
    fig = kl_curves_figure(_history(), log_scale=True)
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    with pytest.raises(ConfigError, match="no KL"):
        kl_curves_figure([{"step": 1, "loss": 0.5}])
    with pytest.raises(ConfigError, match="empty"):
        kl_curves_figure([])


def test_plot_kl_curves_writes_png_of_figsize_times_dpi(tmp_path):
    recs = _history(range(0, 300, 100))
    out = plot_kl_curves(recs, tmp_path / "sub" / "kl.png", dpi=40)
    assert out == tmp_path / "sub" / "kl.png"
    w, h = kl_curves_figure(recs).get_size_inches()
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (w * 40, h * 40)
    assert not [p for p in out.parent.iterdir() if p.name != "kl.png"]  # no temporary left behind


def test_kl_ranking_bars_descend_whatever_the_mapping_order():
    kl = {"cont.0": 0.01, "disc.0": 2.2, "cont.3": 1.5, "cont.10": 0.7}
    fig = kl_ranking_figure(kl)
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    assert widths == [2.2, 1.5, 0.7, 0.01]
    # the bar at each tick is the unit named there
    ticks = {t.get_text(): pos for t, pos in zip(ax.get_yticklabels(), ax.get_yticks())}
    assert [ticks[u] for u in ("disc.0", "cont.3", "cont.10", "cont.0")] == [p.get_y() + p.get_height() / 2
                                                                             for p in ax.patches]
    texts = {t.get_text() for t in ax.texts}
    assert {"2.20", "1.50", "0.70", "0.01"} <= texts


def test_kl_ranking_with_traversals_and_size_grows_with_units(tmp_path):
    kl = {f"z.{i}": float(i) for i in range(5)}
    strips = torch.rand(5, 4, 3, 8, 8)
    strips[0] = 0.0  # the top-KL unit, z.4, gets the first row
    fig = kl_ranking_figure(kl, traversals=strips)
    assert len(fig.axes) == 6
    first = fig.axes[1].get_images()[0].get_array()
    assert first.shape == (8, 32, 3) and float(np.max(first)) == 0.0
    assert fig.axes[1].get_position().y0 > fig.axes[2].get_position().y0  # rows go down in KL order
    grey = kl_ranking_figure(kl, traversals=torch.rand(5, 6, 1, 8, 8))
    assert grey.axes[1].get_images()[0].get_array().shape == (8, 48)
    big = kl_ranking_figure({f"z.{i}": float(i) for i in range(30)})
    assert big.get_size_inches()[1] > kl_ranking_figure(kl).get_size_inches()[1] + 5

    out = plot_kl_ranking(kl, tmp_path / "rank.png", traversals=strips, title="t", dpi=40)
    w, h = kl_ranking_figure(kl, traversals=strips, title="t").get_size_inches()
    with Image.open(out) as img:
        assert img.size == (w * 40, h * 40)


@pytest.mark.parametrize("kl, traversals, phrase", [
    ({}, None, "no units"),
    ({"z.0": float("nan")}, None, "finite"),
    ({"z.0": 1.0, "z.1": 0.5}, torch.rand(3, 4, 1, 8, 8), "3 rows but `kl` has 2"),
    ({"z.0": 1.0}, torch.rand(1, 1, 8, 8), "5 dimensions"),
    ({"z.0": 1.0}, torch.rand(1, 4, 2, 8, 8), "1 \\(grey\\) or 3"),
    ({"z.0": 1.0}, torch.ones(1, 4, 1, 8, 8, dtype=torch.uint8), "float"),
    ({"z.0": 1.0}, [[0.5]], "torch.Tensor"),
])
def test_kl_ranking_rejects_bad_input(kl, traversals, phrase):
    with pytest.raises(ConfigError, match=phrase):
        kl_ranking_figure(kl, traversals=traversals)


def test_kl_rise_steps_first_step_and_order():
    recs = _history(range(0, 1300, 100))
    rise = kl_rise_steps(recs, threshold=0.1)
    # z.i = (s - 100 i) / 500 reaches 0.1 at s = 100 i + 50, first logged at 100 (i + 1); bern.0 = s / 1000 at 100
    assert rise["z.0"] == 100 and rise["z.3"] == 400 and rise["z.10"] == 1100 and rise["bern.0"] == 100
    assert list(rise)[:3] == ["z.0", "bern.0", "z.1"]  # tie at step 100: channel order
    late = kl_rise_steps(recs, threshold=1.5)  # reached at s >= 100 i + 750; bern.0 stops at 0.69
    assert list(late.items()) == [("z.0", 800), ("z.1", 900), ("z.2", 1000), ("z.3", 1100), ("z.4", 1200),
                                  *((f"z.{i}", None) for i in range(5, 11)), ("bern.0", None)]
    shuffled = kl_rise_steps(recs[::-1], threshold=1.5)
    assert shuffled == late and list(shuffled) == list(late)


def test_kl_rise_figure_orders_units_by_their_first_rise(tmp_path):
    from latentkit.viz.plots import kl_rise_figure, plot_kl_rise

    records = []
    for step in range(0, 1001, 50):
        records.append({"step": step, "kl_unit/c.0": 0.0, "kl_unit/c.1": max(0.0, (step - 600) / 1000),
                        "kl_unit/d.0": step / 500, "kl/c": 0.0, "kl/d": step / 500})
    fig = kl_rise_figure(records)
    bars = fig.axes[1]
    labels = [t.get_text() for t in bars.get_yticklabels()]
    assert labels == ["d.0", "c.1", "c.0"]  # d.0 reaches 0.1 nats at step 50, c.1 at 700, c.0 never
    assert [p.get_width() for p in bars.patches] == [50, 700, 0]
    ys = [p.get_y() for p in bars.patches]
    assert ys[0] > ys[1] > ys[2]  # earliest on top
    path = plot_kl_rise(records, tmp_path / "rise.png", dpi=40)
    with Image.open(path) as im:
        assert im.size[0] == round(fig.get_figwidth() * 40)
