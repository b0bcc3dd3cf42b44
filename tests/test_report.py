"""The report: label-savings math on a hand-made results.csv, the summary, the plot."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from detal.errors import DataError
from detal.report import (
    auc,
    axes_of,
    curve,
    cycles_below,
    final_step,
    first_reach,
    label_savings,
    labels_matter,
    load_results,
    paired_gaps,
    saving_along_curve,
    summary_markdown,
    write_report,
)

FRACS = [0.02, 0.12, 0.22, 0.32, 0.42]
# per (strategy, seed): mAP50-95 per cycle
TABLE = {
    ("random", 0): [0.0, 0.10, 0.20, 0.30, 0.38],
    ("random", 1): [0.0, 0.10, 0.20, 0.30, 0.42],  # final mean 0.40
    ("mixed", 0): [0.0, 0.15, 0.30, 0.45, 0.50],
    ("mixed", 1): [0.0, 0.15, 0.40, 0.45, 0.50],  # mean 0, .15, .35, .45, .50 -> reaches .40 at .27
    ("topk", 0): [0.0, 0.05, 0.10, 0.20, 0.30],
    ("topk", 1): [0.0, 0.05, 0.10, 0.20, 0.30],  # never reaches .40
}


@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "seed", "cycle", "n_labeled", "labeled_fraction", "map50", "map50_95",
                    "train_s", "score_s", "select_s"])
        for (s, seed), values in TABLE.items():
            for c, (fr, v) in enumerate(zip(FRACS, values)):
                w.writerow([s, seed, c, int(fr * 100), fr, min(1.0, v * 1.5), v, 10, 1, 0.01])
    return path


@pytest.mark.parametrize(
    ("fractions", "values", "target", "expected"),
    [
        ([0.0, 0.5, 1.0], [0.0, 0.1, 0.2], 0.15, 0.75),
        ([0.0, 0.5, 1.0], [0.0, 0.1, 0.2], 0.1, 0.5),  # reached exactly at a cycle
        ([0.1, 0.5, 1.0], [0.3, 0.4, 0.5], 0.2, 0.1),  # already there at the start
        ([0.0, 0.5, 1.0], [0.0, 0.1, 0.2], 0.25, None),  # never reached
        ([0.0, 0.3, 0.6, 0.9], [0.0, 0.3, 0.1, 0.4], 0.2, 0.2),  # the first crossing, not the last
    ],
)
def test_first_reach(fractions, values, target, expected):
    got = first_reach(np.asarray(fractions), np.asarray(values), target)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_curve_mean_and_band(results):
    rows = load_results(results)
    c = curve(rows, "mixed")
    assert c.mean.tolist() == pytest.approx([0.0, 0.15, 0.35, 0.45, 0.50])
    assert c.lo[2] == 0.30 and c.hi[2] == 0.40
    assert c.std[2] == pytest.approx(np.std([0.3, 0.4], ddof=1))
    assert c.fraction.tolist() == pytest.approx(FRACS)


def test_label_savings(results):
    sav = label_savings(load_results(results))
    assert sav["random"]["target"] == pytest.approx(0.40)
    assert sav["random"]["fraction"] == pytest.approx(0.42)
    assert sav["random"]["savings"] == pytest.approx(0.0)
    assert sav["mixed"]["fraction"] == pytest.approx(0.27)
    assert sav["mixed"]["savings"] == pytest.approx(1 - 0.27 / 0.42)
    assert sav["topk"]["fraction"] is None and sav["topk"]["savings"] is None


def test_label_savings_at_an_earlier_cycle(results):
    # random's mean at cycle 2 is 0.20, with 22 % labeled; mixed (0, .15, .35 ...) reaches 0.20 at
    # 0.12 + (0.20 - 0.15) / (0.35 - 0.15) * 0.10 = 0.145
    sav = label_savings(load_results(results), at=2)
    assert sav["random"]["target"] == pytest.approx(0.20) and sav["random"]["savings"] == pytest.approx(0.0)
    assert sav["mixed"]["fraction"] == pytest.approx(0.145)
    assert sav["mixed"]["savings"] == pytest.approx(1 - 0.145 / 0.22)
    # topk (0, .05, .10, .20) reaches 0.20 only at 32 %: more labels than random, a negative saving
    assert sav["topk"]["savings"] == pytest.approx(1 - 0.32 / 0.22)


def test_summary_and_files(results, tmp_path):
    text = summary_markdown(load_results(results))
    assert "| mixed | 2 | 0.420 |" in text
    assert "0.500 ± 0.000" in text and "0.400 ± 0.028" in text
    assert "0.350 (+0.150)" in text  # cycle 2 gap
    assert "| mixed | 0.270 | 36% |" in text
    assert "| topk | — | not reached |" in text
    assert "## Label savings along the curve" in text
    assert "| 2 | 0.200 | 0.220 | 34% | -45% |" in text  # mixed 1 - .145/.22, topk 1 - .32/.22
    assert "| 4 | 0.400 | 0.420 | 36% | not reached |" in text  # the final row repeats the table above
    png, md = write_report(results, tmp_path / "out")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert md.read_text() == summary_markdown(load_results(results), title="Simulation `out`")


def test_bad_results(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("strategy,seed\nrandom,0\n")
    with pytest.raises(DataError, match="missing column"):
        load_results(p)
    with pytest.raises(DataError, match="not found"):
        load_results(tmp_path / "nope.csv")


def test_empty_timing_cells_are_no_timing(results, tmp_path):
    # benchmarks/compare.py merges runs and leaves timing cells empty where a run had none.
    rows = list(csv.reader(results.open(newline="")))
    for row in rows[1:]:
        if row[0] == "topk":
            row[7:10] = ["", "", ""]
    merged = tmp_path / "merged.csv"
    with merged.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    loaded = load_results(merged)
    assert all("train_s" not in r for r in loaded if r["strategy"] == "topk")
    text = summary_markdown(loaded)
    assert "| mixed | 10.0 |" in text  # timings of the runs that have them
    assert "nan" not in text  # and no row for the run that has none


# -- boxes, AUC, paired gaps and the hold control ------------------------------------------
# Per (strategy, seed): (mAP50-95, boxes labeled) per cycle. hold keeps the initial labels.
PROTOCOL = {
    ("random", 0): ([0.10, 0.30, 0.40], [20, 220, 420]),
    ("random", 1): ([0.10, 0.34, 0.44], [20, 230, 430]),  # final mean 0.42
    ("hold", 0): ([0.10, 0.11, 0.10], [20, 20, 20]),
    ("hold", 1): ([0.10, 0.33, 0.12], [20, 20, 20]),  # cycle 1: a seed where hold ~ random
    ("hybrid", 0): ([0.10, 0.42, 0.50], [20, 300, 600]),
    ("hybrid", 1): ([0.10, 0.42, 0.50], [20, 300, 600]),
}
PFRACS = [0.02, 0.22, 0.42]


@pytest.fixture
def protocol(tmp_path):
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "seed", "cycle", "n_labeled", "labeled_fraction", "map50", "map50_95", "n_boxes"])
        for (s, seed), (values, boxes) in PROTOCOL.items():
            for c, (fr, v, b) in enumerate(zip(PFRACS, values, boxes)):
                fr = 0.02 if s == "hold" else fr
                w.writerow([s, seed, c, int(fr * 1000), fr, v, v, b])
    return load_results(path)


def test_auc_is_the_mean_map_over_the_budget(protocol):
    # trapezoid: ((0.10 + 0.30) * 0.2 / 2 + (0.30 + 0.40) * 0.2 / 2) / 0.4 = 0.275
    assert auc(protocol, "random")[0] == pytest.approx(0.275)
    assert auc(protocol, "hybrid")[1] == pytest.approx(((0.10 + 0.42) + (0.42 + 0.50)) / 4)
    assert auc(protocol, "hold")[0] == pytest.approx((0.10 + 0.11 + 0.10) / 3)  # no range: mean


def test_paired_gaps(protocol):
    gaps = paired_gaps(protocol, "hybrid", "random")
    assert gaps[1] == pytest.approx({0: 0.12, 1: 0.08})
    assert gaps[2] == pytest.approx({0: 0.10, 1: 0.06})
    assert gaps[0] == pytest.approx({0: 0.0, 1: 0.0})


def test_labels_matter_needs_every_seed_and_the_noise(protocol):
    m = labels_matter(protocol)
    assert m[0]["matters"] is False  # identical initial sets: no gain
    assert m[1]["matters"] is False  # seed 1 gains only 0.01
    assert m[1]["min_gain"] == pytest.approx(0.01)
    assert m[2]["matters"] is True
    assert m[2]["gain"] == pytest.approx((0.30 + 0.32) / 2)
    assert m[2]["noise"] == pytest.approx(np.std([0.40, 0.44], ddof=1))
    # the last batch's own gain: random at cycle 2 minus cycle 1, per seed 0.10 and 0.10
    assert m[2]["step"] == pytest.approx(0.10) and m[2]["step_matters"] is True
    assert np.isnan(m[0]["step"]) and m[0]["step_matters"] is False


def test_label_savings_in_boxes(protocol):
    imgs = label_savings(protocol, "random")
    box = label_savings(protocol, "random", x="n_boxes")
    # hybrid reaches 0.42 on its mean curve at fraction 0.22 (exactly cycle 1) ...
    assert imgs["hybrid"]["fraction"] == pytest.approx(0.22)
    assert imgs["hybrid"]["savings"] == pytest.approx(1 - 0.22 / 0.42)
    # ... having labeled 300 boxes, against random's 425 at the end
    assert box["hybrid"]["fraction"] == pytest.approx(300)
    assert box["hybrid"]["savings"] == pytest.approx(1 - 300 / 425)


def test_summary_reports_the_protocol(protocol):
    text = summary_markdown(protocol)
    assert "![mAP50-95 against images and boxes labeled](curves.png)" in text
    assert "## Do labels matter?" in text
    assert "| 1 | +0.100 | +0.010 |" in text and "**cannot rank strategies**" in text
    assert "| 2 | +0.310 | +0.300 | 0.028 | +0.100 | labels matter |" in text
    assert "1 †" in text  # the per-cycle table flags the cycle that cannot rank
    assert "| hybrid | 0.220 | 48% | 300 | 29% |" in text
    assert "| 2 | 0.420 | 0.420 | 48% / 29% |" in text  # images / boxes, hybrid's column
    assert "hybrid seed 0" in text and "| AUC |" in text


def test_plot_has_a_boxes_panel(protocol, tmp_path):
    from detal.report import plot_curves

    plot_curves(protocol, tmp_path / "c.png")
    import matplotlib.image as mpimg

    img = mpimg.imread(tmp_path / "c.png")
    assert img.shape[1] > 1.8 * img.shape[0]  # two panels side by side


def test_a_flat_last_batch_is_reported(tmp_path):
    rows = []
    for seed, (r1, r2) in enumerate([(0.60, 0.605), (0.62, 0.622)]):
        for c, (rv, hv) in enumerate([(0.3, 0.3), (r1, 0.3), (r2, 0.3)]):
            rows.append({"strategy": "random", "seed": seed, "cycle": c, "labeled_fraction": 0.02 + 0.1 * c,
                         "map50": rv, "map50_95": rv})
            rows.append({"strategy": "hold", "seed": seed, "cycle": c, "labeled_fraction": 0.02,
                         "map50": hv, "map50_95": hv})
    m = labels_matter(rows)
    assert m[2]["matters"] is True and m[2]["step_matters"] is False
    assert m[1]["step_matters"] is True
    assert "the last batch added less than twice the seed noise" in summary_markdown(rows)


# -- the headline: the saving along the whole curve; the final target only where it can be read ------
def test_saving_along_the_curve_by_hand(results):
    rows = load_results(results)
    # random's mean levels .10/.20/.30/.40 at .12/.22/.32/.42; mixed's mean curve 0/.15/.35/.45/.50
    # reaches them at .02 + .10/.15 * .1, .12 + .05/.2 * .1, .12 + .15/.2 * .1, .22 + .05/.1 * .1
    reached = [0.02 + 0.1 / 0.15 * 0.1, 0.145, 0.195, 0.27]
    expected = [1 - f / b for f, b in zip(reached, [0.12, 0.22, 0.32, 0.42])]
    a = saving_along_curve(rows, "mixed")
    assert a.per_level == pytest.approx(expected) and a.bound is False
    assert a.mean == pytest.approx(np.mean(expected))
    # topk never reaches .40: that level counts as reached at its last point (.42), so the mean is a bound
    t = saving_along_curve(rows, "topk")
    assert t.per_level[:3] == pytest.approx([1 - 0.22 / 0.12, 1 - 0.32 / 0.22, 1 - 0.42 / 0.32])
    assert t.per_level[3] is None and t.bound is True
    assert t.mean == pytest.approx(np.mean([1 - 0.22 / 0.12, 1 - 0.32 / 0.22, 1 - 0.42 / 0.32, 0.0]))
    # per seed: seed 1 of mixed (0/.15/.40/.45/.50) against seed 1 of random (levels .10/.20/.30/.42)
    s1 = saving_along_curve(rows, "mixed", seed=1)
    assert s1.per_level[3] == pytest.approx(1 - (0.22 + 0.02 / 0.05 * 0.1) / 0.42)  # .40 at .22, .45 at .32
    assert saving_along_curve(rows, "random").mean == pytest.approx(0.0)


def test_an_arm_run_at_fewer_seeds_is_compared_on_its_seeds_only(results):
    # mixed run at seed 1 only: its mean saving is its seed-1 saving, not one against random's mean of both
    # seeds (which, on this table, would differ), and the cycles below random are read on seed 1 too
    rows = [r for r in load_results(results) if not (r["strategy"] == "mixed" and r["seed"] != 1)]
    alone = saving_along_curve(rows, "mixed", seed=1)
    both = saving_along_curve([r for r in rows if r["strategy"] != "random" or r["seed"] == 1], "mixed")
    assert saving_along_curve(rows, "mixed").mean == pytest.approx(alone.mean) == pytest.approx(both.mean)
    # the unpaired number (mixed's curve against random's mean over both seeds) is another one
    unpaired = [*rows, *[{**r, "seed": 0} for r in rows if r["strategy"] == "mixed"]]
    assert saving_along_curve(unpaired, "mixed").mean != pytest.approx(alone.mean)
    assert cycles_below(rows, "mixed") == cycles_below([r for r in rows if r["seed"] == 1], "mixed")


def test_final_step_decides_whether_the_final_target_is_read(results, tmp_path):
    rows = load_results(results)
    step = final_step(rows)
    assert step["steps"] == pytest.approx({0: 0.08, 1: 0.12})
    assert step["noise"] == pytest.approx(np.std([0.38, 0.42], ddof=1)) and step["measurable"] is True
    flat = [dict(r) for r in rows]
    for r in flat:  # random's last batch adds +0.001 / +0.003: a flat tail
        if r["strategy"] == "random" and r["cycle"] == 4:
            r["map50_95"] = 0.301 if r["seed"] == 0 else 0.303
    assert final_step(flat)["measurable"] is False
    text = summary_markdown(flat)
    assert "## Label savings at random's final mAP50-95: cannot be measured" in text
    assert "+0.001 / +0.003" in text
    assert "fewer images than random |" not in text  # no final-target table
    assert "| 4 ‡ |" in text  # the along-curve row of the flat tail is marked
    one_seed = [r for r in rows if r["seed"] == 0]
    assert "one seed gives no estimate of the seed noise" in summary_markdown(one_seed)


def test_the_headline_leads_the_summary(protocol):
    text = summary_markdown(protocol)
    head = text.index("## Headline: labels saved along the curve (against random)")
    assert head < text.index("## Final cycle")
    # hybrid: random's levels .32 (f .22, 225 boxes) and .42 (f .42, 425 boxes); hybrid's mean curve
    # .10/.42/.50 at .02/.22/.42 reaches .32 at .02 + .22/.32 * .2 and .42 at .22
    imgs = [1 - (0.02 + 0.22 / 0.32 * 0.2) / 0.22, 1 - 0.22 / 0.42]
    boxes = [1 - (20 + 0.22 / 0.32 * 280) / 225, 1 - 300 / 425]
    row = next(line for line in text.splitlines() if line.startswith("| hybrid | +"))
    assert row.startswith(f"| hybrid | {np.mean(imgs):+.0%} | {np.mean(boxes):+.0%} |")
    gaps = [auc(protocol, "hybrid")[k] - auc(protocol, "random")[k] for k in (0, 1)]
    assert f"{gaps[0]:+.3f} / {gaps[1]:+.3f} (2 of 2 seeds positive)" in row
    assert row.endswith("| none |")
    assert "| hold | +" not in text  # the control is not a strategy to save with


def test_hold_is_a_line_across_the_range(protocol, tmp_path, monkeypatch):
    import matplotlib.axes

    from detal.report import plot_curves

    drawn = []
    real = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((list(args[0]), kwargs.get("label", "")))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    plot_curves(protocol, tmp_path / "c.png")
    hold = [xs for xs, label in drawn if label.startswith("hold")]
    assert hold[0] == pytest.approx([0.02, 0.42])  # images panel: from the first to the last fraction
    assert hold[1] == pytest.approx([20, 600])  # boxes panel


# -- annotator time: a third axis, when the results carry the seconds ---------------------------
# Seconds an image per (strategy, profile): mixed's uncertain picks cost more to correct than random's.
PER_IMAGE_S = {"random": (10.0, 30.0), "mixed": (20.0, 45.0), "topk": (10.0, 30.0)}


@pytest.fixture
def hours_results(tmp_path):
    path = tmp_path / "run" / "results.csv"
    path.parent.mkdir()
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "seed", "cycle", "n_labeled", "labeled_fraction", "map50", "map50_95",
                    "annotator_s", "annotator_s_draw25"])
        for (s, seed), values in TABLE.items():
            for c, (fr, v) in enumerate(zip(FRACS, values)):
                n = round(fr * 100)
                w.writerow([s, seed, c, n, fr, v, v, n * PER_IMAGE_S[s][0], n * PER_IMAGE_S[s][1]])
    return path


def test_saving_in_hours_along_the_curve(hours_results):
    rows = load_results(hours_results)
    assert [x for x, _ in axes_of(rows)] == ["labeled_fraction", "annotator_s", "annotator_s_draw25"]
    # mixed reaches random's levels at these fractions (test_saving_along_the_curve_by_hand); its
    # seconds are 2x (draw 7 s) and 1.5x (draw 25 s) random's at the same fraction
    reached = [0.02 + 0.1 / 0.15 * 0.1, 0.145, 0.195, 0.27]
    for x, ratio in (("annotator_s", 2.0), ("annotator_s_draw25", 1.5)):
        a = saving_along_curve(rows, "mixed", x=x)
        assert a.per_level == pytest.approx([1 - ratio * f / b for f, b in zip(reached, [0.12, 0.22, 0.32, 0.42])])
    sav = label_savings(rows, x="annotator_s")
    assert sav["mixed"]["fraction"] == pytest.approx(27 * 20.0)  # seconds at fraction .27
    assert sav["mixed"]["savings"] == pytest.approx(1 - 540 / 420)


def test_summary_in_hours(hours_results):
    text = summary_markdown(load_results(hours_results), draw_s=7)
    assert "![mAP50-95 against images and boxes labeled, and annotator hours](curves.png)" in text
    assert "| strategy | fewer images | fewer hours (draw 7 s) | fewer hours (draw 25 s) |" in text
    mixed = next(line for line in text.splitlines() if line.startswith("| mixed | +"))
    imgs = saving_along_curve(load_results(hours_results), "mixed").mean
    assert mixed.startswith(f"| mixed | {imgs:+.0%} | {2 * imgs - 1:+.0%} | {1.5 * imgs - 0.5:+.0%} |")
    # the final-cycle table: 42 images at 20 s and 45 s
    assert "| mixed | 2 | 0.420 | 0.23 (20.0 s an image) | 0.53 (45.0 s an image) |" in text
    # the final target (random's .40 at 42 images, 420 s / 1260 s): mixed there at 27 images, 540 s / 1215 s
    assert ("| strategy | labeled fraction needed | fewer images than random | hours (draw 7 s) needed "
            "| fewer hours (draw 7 s) than random | hours (draw 25 s) needed | fewer hours (draw 25 s) than random |"
            ) in text
    assert "| mixed | 0.270 | 36% | 0.15 | -29% | 0.34 | 4% |" in text
    assert "| topk | — | not reached | — | not reached | — | not reached |" in text
    # along the curve, cycle 2: mixed 1 - .145/.22 in images, 1 - 2 * .145/.22 and 1 - 1.5 * .145/.22 in hours
    assert "| 2 | 0.200 | 0.220 | 34% / -32% / 1% | -45% / -45% / -45% |" in text


def test_no_time_columns_no_time_axis(results, hours_results, tmp_path):
    rows = load_results(results)
    assert [x for x, _ in axes_of(rows)] == ["labeled_fraction"]
    assert "hours" not in summary_markdown(rows)
    # a merged run where one arm has no time (empty cells) has no time axis either
    lines = list(csv.reader(hours_results.open(newline="")))
    for row in lines[1:]:
        if row[0] == "topk":
            row[7:9] = ["", ""]
    merged = tmp_path / "merged.csv"
    with merged.open("w", newline="") as f:
        csv.writer(f).writerows(lines)
    assert "hours" not in summary_markdown(load_results(merged))


def test_time_axis_named_from_the_run_config(hours_results, tmp_path):
    _, md = write_report(hours_results, tmp_path / "unnamed")
    assert "fewer hours (the run's effort_seconds) |" in md.read_text()
    (hours_results.parent / "config.yaml").write_text("effort_seconds:\n  draw: 5\n", encoding="utf-8")
    _, md = write_report(hours_results, tmp_path / "named")
    assert "fewer hours (draw 5 s) | fewer hours (draw 25 s) |" in md.read_text()
    (hours_results.parent / "config.yaml").write_text("effort_secnds: 1\n", encoding="utf-8")
    _, md = write_report(hours_results, tmp_path / "bad")  # a config that names nothing: no name, no failure
    assert "fewer hours (the run's effort_seconds) |" in md.read_text()


def test_bad_seconds_is_a_data_error(hours_results):
    text = hours_results.read_text().replace(",420.0,", ",4 minutes,", 1)
    hours_results.write_text(text)
    with pytest.raises(DataError, match=r"results.csv:\d+: bad number in row"):
        load_results(hours_results)


def test_plot_has_hours_panels_in_hours(hours_results, tmp_path, monkeypatch):
    import matplotlib.axes
    import matplotlib.image as mpimg

    from detal.report import plot_curves

    rows = load_results(hours_results)
    drawn, labels = [], []
    real_plot, real_label = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.set_xlabel

    def spy(self, *args, **kwargs):
        if kwargs.get("label", "").startswith("random"):
            drawn.append(list(args[0]))
        return real_plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xlabel",
                        lambda self, text, *a, **k: labels.append(text) or real_label(self, text, *a, **k))
    plot_curves(rows, tmp_path / "c.png", draw_s=7)
    assert labels == ["labeled fraction of the pool", "annotator hours (draw 7 s)", "annotator hours (draw 25 s)"]
    assert drawn[1] == pytest.approx([n * 10.0 / 3600 for n in (2, 12, 22, 32, 42)])  # hours, not seconds
    assert drawn[2] == pytest.approx([n * 30.0 / 3600 for n in (2, 12, 22, 32, 42)])
    img = mpimg.imread(tmp_path / "c.png")
    assert img.shape[0] > 1.5 * 4.2 * 110 and img.shape[1] < 2.2 * 6.4 * 110  # two rows of two panels
