"""The static results site: tables per track, reported rows, matplotlib SVG figures, and the
page as headless Chromium renders it; which entries it ranks (verified against their run dirs),
shows apart (unverified) or leaves out (rejected).

The entries here are written to the contracts by `make_run` but their runs were never trained,
so the rendering tests stand in for the run-dir check (`as_verified`); the check itself runs on
a real run in test_roundtrip.py."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from conftest import check_page_in_chromium
from test_entries import CPU, make_run

from crambench.errors import UserError
from crambench.shell.cli import main
from leaderboard import admission, build_site, submit


@pytest.fixture
def entries(tmp_path):
    """Four entries: ranked GLUE, open GLUE on CPU, open probe-only, and one broken file."""
    folder = tmp_path / "entries"
    submit(make_run(tmp_path, name="a6000-run"), "crammed-a6000", out=folder / "a.json")
    submit(make_run(tmp_path, name="cpu-run", hardware=CPU, budget_s=3 * 3600,
                    elapsed_s=3 * 3600 - 5), "cpu-3h", out=folder / "b.json")
    submit(make_run(tmp_path, name="probe-run", hardware=CPU, budget_s=180, elapsed_s=179,
                    tasks=("continuation", "word_order"), suite="probe", protocol="quick"),
           "demo-probe", out=folder / "c.json")
    broken = json.loads((folder / "a.json").read_text())
    broken["name"], broken["budget_s"] = "too-long", 60.0
    (folder / "d.json").write_text(json.dumps(broken))
    return folder


@pytest.fixture
def as_verified(monkeypatch):
    """Every entry that passes the record-free checks counts as verified against its run."""
    judge_entries = admission.judge_entries

    def judged_verified(entries_dir, **kwargs):
        judged = judge_entries(entries_dir, **kwargs)
        for item in judged:
            if item.status == admission.UNVERIFIED:
                item.status, item.reasons = admission.VERIFIED, []
        return judged

    monkeypatch.setattr(admission, "judge_entries", judged_verified)


def test_site_has_track_tables_figures_and_reported_rows(entries, tmp_path, as_verified):
    index = build_site(entries, tmp_path / "site")
    page = index.read_text()
    ranked, open_ = page.split("<h2>Ranked track</h2>")[1].split("<h2>Open track</h2>")
    assert "crammed-a6000" in ranked and "cpu-3h" not in ranked
    assert "cpu-3h" in open_ and "cpu is not a ranked GPU" in open_
    assert "demo-probe" in open_ and "no GLUE score" in open_
    assert "Reported, not reproduced" in page and "arXiv:2212.14034v1" in page
    assert ">78.6<" in page and ">80.9<" in page
    # The broken entry is left out, and the page says why.
    assert "Entries not shown" in page and "too-long" not in ranked + open_.split("Reported")[0]
    assert "train_elapsed_s 86390.5 is over budget_s 60" in page
    assert "<footer>3 entries · " in page
    for figure in ("glue_vs_budget.svg", "loss_curves.svg"):
        svg = ET.parse(tmp_path / "site" / figure).getroot()
        assert svg.tag.endswith("svg") and f'src="{figure}"' in page
        assert "Matplotlib" in (tmp_path / "site" / figure).read_text()
    # Entry names are text in the figures (svg.fonttype none): the plots show the entries.
    assert "crammed-a6000" in (tmp_path / "site" / "glue_vs_budget.svg").read_text()
    assert "demo-probe" in (tmp_path / "site" / "loss_curves.svg").read_text()
    # Runs of 3 minutes and 24 hours share a log time axis (on a linear one the short run is a
    # vertical line at zero); one run alone keeps a linear axis.
    assert "training time (log scale)" in (tmp_path / "site" / "loss_curves.svg").read_text()


def test_rebuild_replaces_site_but_not_foreign_folders(entries, tmp_path):
    site = tmp_path / "site"
    build_site(entries, site)
    first = (site / "glue_vs_budget.svg").read_bytes()
    build_site(entries, site)
    assert (site / "glue_vs_budget.svg").read_bytes() == first  # reproducible SVG
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a site built by"):
        build_site(entries, foreign)
    with pytest.raises(UserError, match="entries folder .* not found"):
        build_site(tmp_path / "none", tmp_path / "site2")


def test_empty_entries_folder_still_builds(tmp_path):
    (tmp_path / "entries").mkdir()
    page = build_site(tmp_path / "entries", tmp_path / "site").read_text()
    assert "No verified ranked entries yet" in page and "Reported, not reproduced" in page
    assert "<footer>0 entries · " in page
    assert "one RTX 2080 Ti, RTX A4000 or RTX A6000; " in page


def test_one_loss_curve_keeps_a_linear_time_axis(tmp_path):
    from leaderboard.plots import loss_curves

    points = [[t, 10.0 / (1 + t)] for t in range(0, 181, 10)]
    svg = loss_curves([{"name": "solo", "points": points}], tmp_path / "loss.svg").read_text()
    assert "training time (min)" in svg and "log scale" not in svg


@pytest.mark.subprocess
def test_page_renders_in_headless_chromium(entries, tmp_path, as_verified):
    index = build_site(entries, tmp_path / "site")
    dom = check_page_in_chromium(index, tmp_path, "site.png")
    rows = re.findall(r"<tr>.*?</tr>", dom.split("<tbody>", 1)[1])
    assert len(re.findall(r'<table class="board ranked">.*?</table>', dom, re.S)) == 1
    assert any("crammed-a6000" in row for row in rows)
    assert '<img src="glue_vs_budget.svg"' in dom and '<img src="loss_curves.svg"' in dom


def test_build_cli_ranks_only_verified_entries(entries, tmp_path, capsys):
    # No run dirs: nothing is ranked; each entry is listed with its reason on stderr.
    assert main(["leaderboard", "build", "--entries", str(entries),
                 "--out", str(tmp_path / "s")]) == 0
    out, err = capsys.readouterr()
    assert out == f"wrote {tmp_path / 's' / 'index.html'}\n"
    assert err.splitlines() == [
        "a.json: unverified: not checked against its run: no --runs folder given",
        "b.json: unverified: not checked against its run: no --runs folder given",
        "c.json: unverified: not checked against its run: no --runs folder given",
        "d.json: rejected: train_elapsed_s 86390.5 is over budget_s 60"]
    page = (tmp_path / "s" / "index.html").read_text()
    assert "No verified ranked entries yet" in page and "No verified open-track" in page
    unverified = page.split("Unverified entries (not ranked)")[1].split("</section>")[0]
    assert "crammed-a6000" in unverified and "unverified: not checked against its run" in page
    assert "<td class=num>–</td><td class=name><strong>crammed-a6000" in unverified
    # --strict: a rejected entry fails the build (the site is still written).
    assert main(["leaderboard", "build", "--entries", str(entries), "--out",
                 str(tmp_path / "s"), "--strict"]) == 1
    (entries / "d.json").unlink()
    assert main(["leaderboard", "build", "--entries", str(entries), "--out",
                 str(tmp_path / "s"), "--strict"]) == 0


def test_build_rejects_an_entry_its_run_dir_contradicts(entries, tmp_path, capsys):
    # A run dir beside each entry's name: these runs were never trained, so the data hash and
    # more cannot be recomputed; a forged run dir does not get an entry ranked.
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "a").symlink_to(tmp_path / "a6000-run")
    assert main(["leaderboard", "build", "--entries", str(entries), "--out",
                 str(tmp_path / "s"), "--runs", str(runs), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "a.json: rejected: hashes.data_sha256 cannot be recomputed" in err
    assert "b.json: unverified: not checked against its run: no run dir for b.json" in err
    page = (tmp_path / "s" / "index.html").read_text()
    assert "crammed-a6000" not in page.split("Entries not shown")[0]


def test_several_entries_one_time_unit_ranks_only_complete_averages(entries, tmp_path,
                                                                    as_verified):
    submit(make_run(tmp_path, name="partial-run", hardware=CPU, budget_s=600, elapsed_s=599.7,
                    tasks=("rte", "mrpc")), "two-tasks", out=entries / "e.json")
    page = build_site(entries, tmp_path / "site").read_text()
    open_ = page.split("<h2>Open track</h2>")[1].split("</section>")[0]
    # One format for the whole time column; elapsed rounds down, never past the budget.
    assert "23:59:50<span class=sub>of 24:00:00" in page
    assert "2:59:55<span class=sub>of 3:00:00" in open_
    assert "0:09:59<span class=sub>of 0:10:00" in open_
    # The complete average is ranked; the two-task one is not ranked against it, and says why.
    cells = re.findall(r"<tr><td class=num>([^<]*)</td><td class=name><strong>([^<]+)", open_)
    assert cells == [("1", "cpu-3h"), ("–", "two-tasks"), ("–", "demo-probe")]
    assert "not ranked: cramming-paper average" in open_ and "(partial: 2 of 9" in open_


def test_close_entries_get_labels_that_do_not_overlap(tmp_path):
    from leaderboard.plots import score_vs_budget

    rows = [{"name": "first-of-two", "track": "open", "budget_s": 86400, "avg": 70.0},
            {"name": "second-of-two", "track": "open", "budget_s": 86400, "avg": 70.0},
            {"name": "far", "track": "ranked", "budget_s": 3600, "avg": 80.0}]
    svg = score_vs_budget(rows, [], tmp_path / "plot.svg").read_text()
    where = {name: (float(x), float(y)) for x, y, name in re.findall(
        r'<text[^>]*x="([0-9.]+)" y="([0-9.]+)"[^>]*>(first-of-two|second-of-two|far)<', svg)}
    assert where["first-of-two"][0] == where["second-of-two"][0]
    assert abs(where["first-of-two"][1] - where["second-of-two"][1]) >= 10  # a line apart
