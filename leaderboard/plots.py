"""The site's figures, drawn by matplotlib (Agg backend) and saved as SVG.

SVG output is made reproducible: a fixed hash salt for element ids and no creation date, so
rebuilding a site from the same entries gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

HOUR = 3600.0
# Budgets people actually pick, from a ten-second test run to a four-day run.
BUDGET_TICKS_H = (10 / HOUR, 1 / 60, 5 / 60, 15 / 60, 1, 3, 8, 24, 96)
# Loss curves whose lengths differ by more than this go on a log time axis: on a linear one
# a 3-minute run next to a 24-hour run is a vertical line at zero.
LOG_TIME_RATIO = 10.0
TRACK_STYLE = {  # ranked: filled; open: hollow, so the two are never confused in grey-scale
    "ranked": {"marker": "o", "color": "#1f5fae", "facecolor": "#1f5fae"},
    "open": {"marker": "s", "color": "#c0561b", "facecolor": "none"},
}


def _figure(width_in: float = 8.0, height_in: float = 4.6):
    import matplotlib

    matplotlib.use("Agg")  # no display: render off-screen
    matplotlib.rcParams.update({
        "svg.hashsalt": "cramming-bench",
        "svg.fonttype": "none",  # text stays text: searchable, crisp at any zoom
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#e3e6ea",
        "grid.linewidth": 0.8,
    })
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, format="svg", metadata={"Date": None})
    return path


def score_vs_budget(rows: list[dict], reported: list[dict], path: Path,
                    unscored: list[dict] = ()) -> Path:
    """GLUE average (cramming-paper columns) against budget in hours, log scale.

    `rows`: entries with a GLUE score, as dicts with name, track, budget_s, avg.
    `reported`: published rows; with a budget they are a star, without one a dashed line.
    `unscored`: entries without a GLUE score (name, budget_s): a tick on the budget axis, so
    every entry is on the figure but none gets a score it does not have.
    """
    fig = _figure()
    ax = fig.add_subplot()
    names = []  # name labels, spread apart once the axes are final
    if unscored:
        from matplotlib.transforms import blended_transform_factory

        on_axis = blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter([r["budget_s"] / HOUR for r in unscored], [0.04] * len(unscored),
                   transform=on_axis, marker="|", s=260, linewidths=2, color="#8a8f96",
                   zorder=3, label="no GLUE score (probe only)")
        names += [ax.annotate(r["name"], (r["budget_s"] / HOUR, 0.04), xycoords=on_axis,
                              xytext=(6, 6), textcoords="offset points", fontsize=8.5,
                              color="#555") for r in unscored]
    for track, style in TRACK_STYLE.items():
        points = [r for r in rows if r["track"] == track]
        if not points:
            continue
        ax.scatter([r["budget_s"] / HOUR for r in points], [r["avg"] for r in points],
                   marker=style["marker"], s=46, edgecolors=style["color"],
                   facecolors=style["facecolor"], linewidths=1.6, zorder=3,
                   label=f"{track} track")
        names += [ax.annotate(r["name"], (r["budget_s"] / HOUR, r["avg"]), xytext=(6, 4),
                              textcoords="offset points", fontsize=8.5, color="#333")
                  for r in sorted(points, key=lambda r: -r["avg"])]
    for ref in reported:
        label = f"{ref['name']} (reported)"
        if ref.get("budget_s"):
            ax.scatter([ref["budget_s"] / HOUR], [ref["avg_cramming"]], marker="*", s=150,
                       color="#6b6f76", zorder=3, label=label)
        else:
            ax.axhline(ref["avg_cramming"], color="#6b6f76", linestyle="--", linewidth=1,
                       label=label)
    budgets = [r["budget_s"] / HOUR for r in [*rows, *unscored]] + [
        ref["budget_s"] / HOUR for ref in reported if ref.get("budget_s")]
    _log_hours_axis(ax, min([*budgets, 1.0]) / 2, max([*budgets, 24.0]) * 2)
    ax.set_xlabel("training budget (log scale)")
    ax.set_ylabel("GLUE dev average (cramming columns)")
    ax.margins(y=0.2)  # room for the name labels above the highest point
    if not rows:
        ax.text(0.5, 0.5, "no GLUE-scored entries yet", transform=ax.transAxes,
                ha="center", va="center", color="#888", fontsize=11)
    # Below the axes, so it never covers a point whatever the scores are.
    # Rows 17 pt apart: the axis tick marker (16 pt tall) must not run into the row below.
    fig.legend(loc="outside lower center", ncols=2, fontsize=8.5, frameon=False,
               labelspacing=1.0)
    spread_labels(fig, names)
    return _save(fig, path)


def spread_labels(fig, labels: list, step_pt: float = 11.0, tries: int = 9) -> None:
    """Move each name label that would overlap an earlier one a line up or down (0, +1, -1,
    +2, ... lines of `step_pt` points), so entries with close budgets and scores stay
    readable. Extents come from the figure's own renderer, after layout."""
    if not labels:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # measures text as the SVG will place it (same font metrics)
    canvas.draw()
    renderer = canvas.get_renderer()
    placed = []
    for label in labels:
        x, y = label.xyann
        for attempt in range(tries):
            lines = (attempt + 1) // 2 * (1 if attempt % 2 else -1)
            label.xyann = (x, y + lines * step_pt)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
        placed.append(box)


def loss_curves(curves: list[dict], path: Path) -> Path:
    """Pretraining loss against elapsed time, one line per entry that carries a curve.

    `curves`: dicts with name and points [[elapsed_s, loss], ...].
    """
    fig = _figure()
    ax = fig.add_subplot()
    lengths = [c["points"][-1][0] for c in curves if c["points"][-1][0] > 0]
    longest = max(lengths, default=0.0)
    if lengths and longest > LOG_TIME_RATIO * min(lengths):
        for curve in curves:  # t = 0 has no place on a log axis
            points = [(t / HOUR, x) for t, x in curve["points"] if t > 0]
            ax.plot(*zip(*points, strict=True), linewidth=1.5, label=curve["name"])
        first = min(t for c in curves for t, _ in c["points"] if t > 0) / HOUR
        _log_hours_axis(ax, first / 1.5, longest / HOUR * 1.5)
        ax.set_xlabel("training time (log scale)")
    else:
        scale, unit = (HOUR, "h") if longest >= 2 * HOUR else (60.0, "min") \
            if longest >= 120 else (1.0, "s")
        for curve in curves:
            ax.plot([t / scale for t, _ in curve["points"]], [x for _, x in curve["points"]],
                    linewidth=1.5, label=curve["name"])
        ax.set_xlabel(f"training time ({unit})")
    ax.set_ylabel("MLM loss (train)")
    if curves:
        ax.legend(loc="upper right", fontsize=8.5, frameon=False)
    else:
        ax.text(0.5, 0.5, "no entry carries a loss curve", transform=ax.transAxes,
                ha="center", va="center", color="#888", fontsize=11)
    return _save(fig, path)


def _log_hours_axis(ax, low_h: float, high_h: float) -> None:
    """A log x axis from `low_h` to `high_h` hours, ticked at the budgets people pick."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    def label(hours, _pos):
        if hours >= 1:
            return f"{hours:g} h"
        if hours >= 1 / 60:
            return f"{hours * 60:.0f} min"
        return f"{hours * HOUR:.0f} s"

    ax.set_xscale("log")
    ax.set_xlim(low_h, high_h)
    ax.set_xticks([t for t in BUDGET_TICKS_H if low_h <= t <= high_h])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(label))


def extraction_scatter(search: dict, path: Path) -> Path:
    """An extraction's candidates: parameters (log scale) against val MLM loss.

    `search`: an entry's `extraction.search`. Pareto-front candidates (on parameters, latency
    at batch 1 and loss) are filled, the rest hollow; the chosen one is ringed; the teacher is
    a grey star, the reference of the ranking."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    rows = [r for r in search["candidates"] if r["val_loss"] is not None]
    for on_front, label in ((True, "Pareto front (params, latency, loss)"),
                            (False, "dominated")):
        points = [r for r in rows if r["pareto"] == on_front]
        if points:
            ax.scatter([r["params"] for r in points], [r["val_loss"] for r in points],
                       marker="o", s=42, edgecolors="#1f5fae", linewidths=1.5, zorder=3,
                       facecolors="#1f5fae" if on_front else "none", label=label)
    chosen = [r for r in rows if r["name"] == search["chosen"]]
    if chosen:
        ax.scatter([chosen[0]["params"]], [chosen[0]["val_loss"]], marker="o", s=190,
                   facecolors="none", edgecolors="#c0561b", linewidths=2, zorder=4,
                   label=f"chosen: {search['chosen']} (highest W)")
    teacher = search["teacher"]
    if teacher.get("val_loss") is not None:
        ax.scatter([teacher["params"]], [teacher["val_loss"]], marker="*", s=150,
                   color="#6b6f76", zorder=3, label=f"teacher {teacher['name']}")
    for r in rows:
        ax.annotate(r["name"], (r["params"], r["val_loss"]), xytext=(5, 4),
                    textcoords="offset points", fontsize=7.5, color="#333")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("val MLM loss after the search")
    ax.margins(x=0.15, y=0.15)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return _save(fig, path)


def score_vs_size(rows: list[dict], path: Path, unscored: list[dict] = (),
                  *, ylabel: str = "GLUE dev average (cramming columns)") -> Path:
    """Score against the stored size of the model as deployed, log bytes on x.

    `rows`: dicts with name, bytes, score, compressed (bool), and optionally parent (the row
    name it was compressed from), drawn as a thin line from parent to variant, and baseline
    (True for an outside model, at the size of its weight files: its own marker).
    `unscored`: (name, bytes) of entries without a score: ticks on the size axis.
    """
    fig = _figure()
    ax = fig.add_subplot()
    by_name = {r["name"]: r for r in rows}
    for r in rows:
        parent = by_name.get(r.get("parent"))
        if parent is not None:
            ax.plot([parent["bytes"], r["bytes"]], [parent["score"], r["score"]],
                    color="#b8bec6", linewidth=1, zorder=2)
    def kind(row: dict) -> str:
        return "baseline" if row.get("baseline") else \
            "compressed" if row["compressed"] else "trained"

    for name, style, label in (("trained", TRACK_STYLE["ranked"], "as trained"),
                               ("compressed", {"marker": "^", "color": "#2e8540",
                                               "facecolor": "#2e8540"}, "compressed variant"),
                               ("baseline", {"marker": "D", "color": "#6f42c1",
                                             "facecolor": "white"},
                                "outside model (baseline, weight files)")):
        points = [r for r in rows if kind(r) == name]
        if not points:
            continue
        ax.scatter([r["bytes"] for r in points], [r["score"] for r in points],
                   marker=style["marker"], s=46, edgecolors=style["color"],
                   facecolors=style["facecolor"], linewidths=1.6, zorder=3, label=label)
        for r in points:
            ax.annotate(r["name"], (r["bytes"], r["score"]), xytext=(6, 4),
                        textcoords="offset points", fontsize=8.5, color="#333")
    if unscored:
        from matplotlib.transforms import blended_transform_factory

        on_axis = blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter([r["bytes"] for r in unscored], [0.04] * len(unscored), transform=on_axis,
                   marker="|", s=260, linewidths=2, color="#8a8f96", zorder=3,
                   label="no GLUE score (probe only)")
        for r in unscored:
            ax.annotate(r["name"], (r["bytes"], 0.04), xycoords=on_axis, xytext=(6, 6),
                        textcoords="offset points", fontsize=8.5, color="#555")
    sizes = [r["bytes"] for r in [*rows, *unscored]]
    ax.set_xscale("log")
    if sizes:
        ax.set_xlim(min(sizes) / 2, max(sizes) * 2)
    from matplotlib.ticker import FuncFormatter

    from crambench.units import format_bytes

    ax.xaxis.set_major_formatter(FuncFormatter(lambda b, _pos: format_bytes(b)))
    ax.set_xlabel("stored size of the deployed model (log scale)")
    ax.set_ylabel(ylabel)
    ax.margins(y=0.2)
    if not rows:
        ax.text(0.5, 0.5, "no scored entry reports a model size yet", transform=ax.transAxes,
                ha="center", va="center", color="#888", fontsize=11)
    if rows or unscored:
        fig.legend(loc="outside lower center", ncols=3, fontsize=8.5, frameon=False,
                   labelspacing=1.0)
    return _save(fig, path)

