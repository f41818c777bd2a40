"""Runs on several GPUs: the open track's multi-gpu category, in the entry, the rules and the
site, never ranked with one-GPU runs."""

from __future__ import annotations

import json

from test_entries import A6000, make_run

from leaderboard import submit, validate_entries

EIGHT_A6000 = {**A6000, "gpu_count": 8, "world_size": 8,
               "device_names": ["NVIDIA RTX A6000"] * 8, "track": "open"}


def test_an_eight_gpu_run_is_the_multi_gpu_category_of_the_open_track(tmp_path):
    run = make_run(tmp_path, hardware=EIGHT_A6000, budget_s=48 * 3600, elapsed_s=48 * 3600 - 9)
    out = tmp_path / "16x.json"
    entry = submit(run, "crammed-16x", out=out)
    assert entry["track"] == "open" and entry["category"] == "multi-gpu"
    assert entry["track_reason"].startswith("8 GPUs (the ranked track is one GPU; multi-gpu")
    assert "budget 48 h is over the ranked 24 h" in entry["track_reason"]
    assert entry["hardware"]["world_size"] == 8 and len(entry["hardware"]["device_names"]) == 8
    assert validate_entries([out]) == {str(out): []}


def test_one_gpu_entries_have_no_category_and_old_summaries_are_one_process(tmp_path):
    entry = submit(make_run(tmp_path), "a6000", out=tmp_path / "a.json")  # no world_size
    assert entry["category"] is None and entry["track"] == "ranked"
    assert entry["hardware"]["world_size"] == 1
    assert entry["hardware"]["device_names"] == ["NVIDIA RTX A6000"]


def test_category_and_device_counts_are_checked(tmp_path):
    run = make_run(tmp_path, hardware=EIGHT_A6000, budget_s=48 * 3600, elapsed_s=48 * 3600 - 9)
    entry = submit(run, "crammed-16x", out=tmp_path / "16x.json")
    for edit, reason in (
            (lambda e: e.update(category=None), "category is None but Rules v1 give 'multi-gpu'"),
            (lambda e: e["hardware"].update(world_size=1, device_names=["x"]),
             "category is 'multi-gpu' but Rules v1 give None for world_size 1"),
            (lambda e: e["hardware"].update(gpu_count=1),
             "hardware.gpu_count 1 differs from world_size 8"),
            (lambda e: e["hardware"]["device_names"].pop(),
             "hardware.device_names has 7 names for world_size 8"),
            (lambda e: e["hardware"].update(world_size=0), "hardware.world_size")):
        edited = json.loads(json.dumps(entry))
        edit(edited)
        path = tmp_path / "edited.json"
        path.write_text(json.dumps(edited))
        problems = validate_entries([path])[str(path)]
        assert any(reason in p for p in problems), (reason, problems)


def test_the_site_shows_multi_gpu_runs_in_their_own_table(tmp_path):
    folder = tmp_path / "entries"
    submit(make_run(tmp_path, name="one"), "one-a6000", out=folder / "a.json")
    submit(make_run(tmp_path, name="eight", hardware=EIGHT_A6000, budget_s=48 * 3600,
                    elapsed_s=48 * 3600 - 9), "eight-a6000", out=folder / "b.json")
    # The page as it lays out verified entries (the build verifies them against their runs).
    from leaderboard import site
    from leaderboard.page import render_page

    entries = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    page = render_page(entries, [], json.loads(site._asset("reported.json")))
    ranked, rest = page.split("<h2>Ranked track</h2>")[1].split("<h2>Open track</h2>")
    open_, multi = rest.split("<h2>Multi-GPU</h2>")
    multi = multi.split("Reported, not reproduced")[0]
    assert "one-a6000" in ranked and "eight-a6000" not in ranked + open_
    assert "eight-a6000" in multi and "8x RTX A6000" in multi
    assert "384 GPU-h" in multi  # 8 GPUs x 48 h (less 9 s)
    assert "8 GPUs for 48 h" in multi  # the cramming paper's 16x reference
