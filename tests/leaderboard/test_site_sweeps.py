"""`cram leaderboard build --sweep DIR`: a page per sweep, linked from the index, every value
on it the report's; and the sweep dirs it refuses (no sweep dir, no report, a report of
another format, a stale one) in one line, with no site written. Fast: the run dirs and the
report are written here (as tests/sweep/test_report.py does), nothing trains."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from conftest import write_sweep_run

from crambench.shell.cli import main
from sweep.layout import save_spec
from sweep.report import sweep_report
from sweep.spec import load_spec, parse_spec

LOSSES = {"baseline": [2.50, 2.46, 2.53], "fast": [2.31, 2.29, 2.35], "same": [2.49, 2.55, 2.47]}
SPEC = {"format": "cram-sweep/1", "data": "data/demo", "budget": "40s", "seeds": [0, 1, 2],
        "baseline": {"preset": "tiny", "overrides": ["train.lr=1e-3"]},
        "variants": [{"name": "fast", "overrides": ["train.batch_size=16"]},
                     {"name": "same", "overrides": ["model.ffn=mlp"]}],
        "eval": {"suite": "none"}, "device": "cpu"}


def make_sweep(out, *, failed=True):
    """A sweep dir as `cram sweep` leaves it (DIR/sweep.json, DIR/runs/ARM/seed-S), one run of
    `fast` failed, and its report."""
    save_spec(out, parse_spec(SPEC, root=out.parent))  # paths recorded absolute
    for arm, losses in LOSSES.items():
        for seed, loss in enumerate(losses):
            failing = failed and (arm, seed) == ("fast", 2)
            write_sweep_run(out / "runs" / arm / f"seed-{seed}", val_loss=loss,
                            status="failed" if failing else "complete")
    return sweep_report(out)


@pytest.fixture
def entries(tmp_path):
    (tmp_path / "entries").mkdir()
    return tmp_path / "entries"


class Page(HTMLParser):
    """The text of every table cell (by table, by row), of each <dd>, <li> and <pre>, and the
    links and images."""

    def __init__(self, html: str):
        super().__init__()
        self.tables, self.texts, self.links, self.images = [], {}, [], []
        self._cell = self._text = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"class": attrs.get("class"), "arm": attrs.get("data-arm"),
                                "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag in ("dd", "li", "pre", "dt"):
            self._text = (tag, [])
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif self._text is not None and tag == self._text[0]:
            self.texts.setdefault(tag, []).append(" ".join("".join(self._text[1]).split()))
            self._text = None

    def handle_data(self, data):
        for part in (self._cell, self._text[1] if self._text else None):
            if part is not None:
                part.append(data)

    def table(self, kind, arm=None):
        found = [t for t in self.tables if t["class"] == kind and t["arm"] == arm]
        assert len(found) == 1, (kind, arm)
        return found[0]["rows"]


def number(value, spec=".4g"):
    return "–" if value is None else f"{value:{spec}}"


def p_text(value):
    return "–" if value is None else (f"{value:.3f}" if value >= 0.001 else "<0.001")


def test_each_sweep_has_a_page_whose_numbers_are_the_reports(tmp_path, entries, capsys):
    out = tmp_path / "sweeps" / "tiny ablation"  # the page's name: its folder's, made safe
    record = make_sweep(out)
    assert main(["leaderboard", "build", "--entries", str(entries), "--out",
                 str(tmp_path / "site"), "--sweep", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'site' / 'index.html'}\n"
    site = tmp_path / "site"
    index = Page((site / "index.html").read_text())
    assert "sweeps/tiny-ablation.html" in index.links
    line = next(text for text in index.texts["li"] if text.startswith("tiny-ablation:"))
    assert line == ("tiny-ablation: val_loss (lower is better), budget 40s, 3 arms x 3 seeds; "
                    "fast: better; same: no detectable difference with n = 3")

    html = (site / "sweeps" / "tiny-ablation.html").read_text()
    assert 'href="../style.css"' in html
    page = Page(html)
    assert page.texts["dd"][:6] == [
        record["arms"]["baseline"]["data"],
        "40s of pretraining per run", "0, 1, 2", "val_loss (lower is better)",
        "0.05 across the variants", "none (the val MLM loss only)"]
    # every variant: difference, interval, p, Holm's p, verdict
    rows = page.table("comparisons")
    assert rows[0] == ["Variant", "diffvariant − baseline", "95% interval", "p", "p (Holm)",
                       "Verdict"]
    assert [row[0] for row in rows[1:]] == ["fast", "same"]
    for row in rows[1:]:
        reported = record["comparisons"][row[0]]
        low, high = reported["interval"]
        assert row[1:] == [number(reported["diff"], "+.4g"), f"[{low:+.4g}, {high:+.4g}]",
                           p_text(reported["p"]), p_text(reported["p_holm"]),
                           reported["verdict"]]
    assert "better" in {row[5] for row in rows[1:]}
    # every arm: each run (a failed one as such), then n, mean ± sd and the means
    for name, arm in record["arms"].items():
        rows = page.table("arm", name)
        assert rows[0] == ["Seed", "Status", "val_loss", "Steps", "Tokens seen", "Tokens/s"]
        assert rows[1:-1] == [[str(run["seed"]), run["status"],
                               number(run["value"]) if run["status"] == "complete" else "–",
                               number(run["steps"], ",.0f"), number(run["tokens_seen"], ",.0f"),
                               number(run["tokens_per_s"], ",.0f")] for run in arm["runs"]]
        assert rows[-1] == [f"n = {arm['n']}", "mean ± sd",
                            f"{number(arm['mean'])} ± {number(arm['sd'])}",
                            number(arm["steps"], ",.0f"), number(arm["tokens_seen"], ",.0f"),
                            number(arm["tokens_per_s"], ",.0f")]
    assert ["2", "failed", "–", "100", "409,600", "10,240"] in page.table("arm", "fast")
    assert record["arms"]["fast"]["n"] == 2
    # the report's warnings: tokens under a billion, and the failed run
    assert record["warnings"] and page.texts["li"] == record["warnings"]
    assert any("fewer than the first 1,000,000,000" in w for w in page.texts["li"])
    # the figure is the report's; the spec beside the page runs the same sweep again
    assert page.images == ["tiny-ablation.svg"]
    assert (site / "sweeps" / "tiny-ablation.svg").read_bytes() == (out / "report.svg").read_bytes()
    assert page.texts["pre"] == ["cram sweep tiny-ablation.yaml --out tiny-ablation "
                                 "cram sweep report tiny-ablation"]
    again = load_spec(site / "sweeps" / "tiny-ablation.yaml")
    recorded = json.loads((out / "sweep.json").read_text())
    assert again.runs_sha256() == recorded["runs_sha256"]
    assert again.variants[0].overrides == ("train.lr=1e-3", "train.batch_size=16")
    # no table on the page that the checks above did not compare
    assert len(page.tables) == 1 + len(record["arms"])


def test_a_report_with_another_metric_and_without_a_figure(tmp_path, entries):
    out = tmp_path / "tiny"
    make_sweep(out, failed=False)
    record = sweep_report(out, alpha=0.1)
    (out / "report.svg").unlink()
    other = tmp_path / "elsewhere" / "tiny"  # a second folder of that name: tiny-2
    make_sweep(other)
    assert main(["leaderboard", "build", "--entries", str(entries), "--out",
                 str(tmp_path / "site"), "--sweep", str(out), "--sweep", str(other)]) == 0
    figure = (tmp_path / "site" / "sweeps" / "tiny.svg").read_text()
    assert figure.startswith("<?xml") and "tokens/s" in figure
    page = Page((tmp_path / "site" / "sweeps" / "tiny.html").read_text())
    assert page.texts["pre"] == ["cram sweep tiny.yaml --out tiny "
                                 "cram sweep report tiny --alpha 0.1"]
    assert "90% interval" in page.table("comparisons")[0]
    assert record["method"]["confidence"] == pytest.approx(0.9)
    index = Page((tmp_path / "site" / "index.html").read_text())
    assert {"sweeps/tiny.html", "sweeps/tiny-2.html"} <= set(index.links)


def test_runs_collected_by_hand_say_their_spec_was_not_recorded(tmp_path, entries):
    out = tmp_path / "by-hand"
    for arm, losses in LOSSES.items():
        for seed, loss in enumerate(losses):
            write_sweep_run(out / "runs" / arm / f"seed-{seed}", val_loss=loss)
    spec = {**SPEC, "baseline": {"preset": "tiny"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))  # YAML's subset
    sweep_report(out, spec_path=tmp_path / "spec.json")
    assert main(["leaderboard", "build", "--entries", str(entries), "--out",
                 str(tmp_path / "site"), "--sweep", str(out)]) == 0
    page = Page((tmp_path / "site" / "sweeps" / "by-hand.html").read_text())
    assert page.texts["dd"][5].startswith("not recorded")
    assert page.texts["pre"] == ["cram sweep report by-hand --spec SPEC"]
    assert not (tmp_path / "site" / "sweeps" / "by-hand.yaml").exists()


def _not_a_sweep(out):
    out.mkdir(parents=True)


def _no_report(out):
    make_sweep(out)
    (out / "report.json").unlink()


def _foreign_report(out):
    make_sweep(out)
    (out / "report.json").write_text(json.dumps({"format": "cram-sweep-report/0"}))


def _stale_report(out):
    make_sweep(out)
    (out / "runs" / "same" / "seed-1" / "summary.json").unlink()
    (out / "runs" / "same" / "seed-1" / "config.yaml").unlink()
    (out / "runs" / "same" / "seed-1").rmdir()
    write_sweep_run(out / "runs" / "same" / "seed-1", val_loss=2.40)  # retrained since


@pytest.mark.parametrize(("make", "error"), [
    (_not_a_sweep, "{out} is not a sweep dir (no {out}/runs: cram sweep SPEC --out {out} "
                   "makes one)"),
    (_no_report, "{out}/report.json not found: run `cram sweep report {out}` first"),
    (_foreign_report, "{out}/report.json has format 'cram-sweep-report/0', expected "
                      "'cram-sweep-report/1'"),
    (_stale_report, "{out}/report.json is stale: arm same seed 1 reads otherwise than "
                    "recorded; run `cram sweep report {out}` again"),
], ids=["not-a-sweep", "no-report", "foreign-report", "stale-report"])
def test_a_sweep_it_cannot_show_is_one_line_and_no_site(tmp_path, entries, capsys, make, error):
    out = tmp_path / "sweep"
    make(out)
    site = tmp_path / "site"
    argv = ["leaderboard", "build", "--entries", str(entries), "--out", str(site)]
    assert main([*argv, "--sweep", str(out)]) == 2
    assert capsys.readouterr().err == f"cram leaderboard: error: {error.format(out=out)}\n"
    assert not site.exists() and not any(tmp_path.glob(".site*"))
    assert main(argv) == 0  # an earlier site stays as it was
    before = (site / "index.html").read_text()
    assert main([*argv, "--sweep", str(out)]) == 2
    assert (site / "index.html").read_text() == before and not (site / "sweeps").exists()
