"""Runs on several GPUs: the open track's multi-gpu category, in the entry, the rules and the
site, never ranked with one-GPU runs."""

from __future__ import annotations

import json

import pytest
from test_entries import A6000, make_run

from crambench.errors import UserError
from leaderboard import submit, validate_entries

TWO_A6000 = {**A6000, "gpu_count": 2, "world_size": 2,
             "device_names": ["NVIDIA RTX A6000"] * 2, "track": "open"}
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


def test_one_gpu_entries_have_no_category(tmp_path):
    entry = submit(make_run(tmp_path), "a6000", out=tmp_path / "a.json")
    assert entry["category"] is None and entry["track"] == "ranked"
    assert entry["hardware"]["world_size"] == 1
    assert entry["hardware"]["device_names"] == ["NVIDIA RTX A6000"]


def test_a_summary_that_does_not_record_its_ranks_is_not_taken_for_one_process(tmp_path):
    one = {k: v for k, v in A6000.items() if k not in ("world_size", "device_names")}
    run = make_run(tmp_path, hardware=one)
    with pytest.raises(UserError, match=r"summary.json: hardware lacks world_size, "
                                        r"device_names: the run does not record how many ranks"):
        submit(run, "a6000", out=tmp_path / "a.json")


def test_a_multi_gpu_entry_stripped_of_its_ranks_is_refused(tmp_path):
    """Without hardware.world_size, device_names and category, a 2-rank run's entry must not
    pass as one process, with or without its run dir."""
    run = make_run(tmp_path, hardware=TWO_A6000)
    entry = submit(run, "two", out=tmp_path / "two.json")
    assert entry["category"] == "multi-gpu"
    for key in ("world_size", "device_names"):
        entry["hardware"].pop(key)
    entry.pop("category")
    entry["track"], entry["track_reason"] = "ranked", None  # what one A6000 would get
    path = tmp_path / "stripped.json"
    path.write_text(json.dumps(entry))
    problems = validate_entries([path])[str(path)]
    assert problems == ["entry: 'category' is a required property",
                        "hardware: 'world_size' is a required property",
                        "hardware: 'device_names' is a required property"]
    assert validate_entries([path], run=run)[str(path)] == problems  # the schema comes first
    # Each key left out alone still fails against the run: its hardware is compared whole.
    entry = submit(run, "two", out=tmp_path / "two.json", force=True)
    entry["hardware"]["segments"][0]["world_size"] = 1
    entry["hardware"]["segments"][0]["device_names"] = ["NVIDIA RTX A6000"]
    path.write_text(json.dumps(entry))
    problems = validate_entries([path], run=run)[str(path)]
    assert any(p.startswith("hardware.segments.0.device_names is ['NVIDIA RTX A6000'] but "
                            f"{run}/summary.json says") for p in problems), problems


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
