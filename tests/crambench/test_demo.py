"""`cram demo` end to end, offline: embedded corpus -> tiny run -> probes -> entry -> site."""

from __future__ import annotations

import json
import re

import pytest
from conftest import check_page_in_chromium

from crambench.shell.cli import main
from leaderboard import validate_entries


@pytest.mark.slow  # about 40 s on two cores
def test_demo_runs_offline_and_reruns_into_the_same_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on a machine without network
    out = tmp_path / "demo-out"
    # A 300-document slice keeps data preparation short; the rest is the real pipeline.
    assert main(["demo", "--budget", "20s", "--out", str(out), "--max-docs", "300",
                 "--quiet"]) == 0
    printed, err = capsys.readouterr()
    # --quiet: no stage lines, but the results and the warning that GLUE was out of reach
    assert "[1/5]" not in printed + err and "probe word_order: accuracy" in printed
    assert err.startswith("cram demo: warning: GLUE is not reachable on the Hub")
    assert "scoring the offline probe tasks instead" in err
    for label, path in [("entry", out / "entries" / "demo.json"),
                        ("site", out / "site" / "index.html"),
                        ("results", out / "run" / "eval" / "probe.json")]:
        assert re.search(rf"^  {label} +{re.escape(str(path))}$", printed, re.M), printed
    entry = json.loads((out / "entries" / "demo.json").read_text())
    assert entry["track"] == "open" and entry["results"]["suite"] == "probe"
    assert entry["budget_s"] == 20 and entry["train_elapsed_s"] <= 20
    assert validate_entries([out / "entries" / "demo.json"], run=out / "run") == {
        str(out / "entries" / "demo.json"): []}

    dom = check_page_in_chromium(out / "site" / "index.html", tmp_path, "demo-site.png")
    # Verified against its run, so in the open track's table (not the unverified one); a
    # probe-only entry has no GLUE average to rank, so no rank number.
    open_track = dom.split("<h2>Open track</h2>")[1].split("</section>")[0]
    assert re.search(r"<tr><td[^>]*>–</td><td class=\"name\"><strong>demo</strong>", open_track)
    assert "Unverified entries" not in dom
    assert "no GLUE score" in dom and '<img src="loss_curves.svg"' in dom
    assert "demo" in (out / "site" / "loss_curves.svg").read_text()

    # Again into the same folder: the prepared data is reused, the run replaced. Without
    # --quiet the stages show as progress lines (stderr).
    assert main(["demo", "--budget", "5s", "--out", str(out), "--max-docs", "300"]) == 0
    assert "[1/5] reusing prepared data" in capsys.readouterr().err
    assert json.loads((out / "entries" / "demo.json").read_text())["budget_s"] == 5


def test_demo_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("mine")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "holds thesis.tex, which the demo did not write" in capsys.readouterr().err
