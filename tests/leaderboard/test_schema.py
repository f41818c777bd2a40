"""The entry schema names every field exactly, and agrees with the records it describes: the
GLUE task table, the fine-tuning protocols, the probe tasks, the run's software record."""

from __future__ import annotations

import dataclasses

import pytest

from leaderboard.schema import entry_schema


def _objects(node, where="entry"):
    """(where, schema) of every object schema that lists properties."""
    if isinstance(node, dict):
        kinds = node.get("type")
        if "properties" in node and "object" in (kinds if isinstance(kinds, list) else [kinds]):
            yield where, node
        for key, child in node.items():
            yield from _objects(child, f"{where}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _objects(child, f"{where}[{index}]")


def _refs(node, closing=False):
    """($defs name, whether the referring schema closes it) of every $ref: a base used in an
    allOf by a schema with unevaluatedProperties false is closed there."""
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"].rsplit("/", 1)[1], closing
        closes = node.get("unevaluatedProperties") is False
        for key, child in node.items():
            yield from _refs(child, closes if key == "allOf" else False)
    elif isinstance(node, list):
        for child in node:
            yield from _refs(child, closing)


def test_every_object_rejects_fields_it_does_not_name():
    schema = entry_schema()
    objects = list(_objects(schema))
    assert len(objects) > 30
    refs = list(_refs(schema))
    # A base whose every use closes it (allOf + unevaluatedProperties false) is strict too.
    bases = {name for name, _ in refs if all(closed for n, closed in refs if n == name)}
    loose = [where for where, node in objects if node.get("additionalProperties") is not False
             and where.removeprefix("entry.$defs.") not in bases]
    assert loose == []


def test_task_results_follow_the_task_table():
    from glue_eval import TASKS

    defs = entry_schema()["$defs"]
    glue = defs["glue_results"]["properties"]["tasks"]["properties"]
    assert set(glue) == {name for name, spec in TASKS.items() if spec.in_protocol}
    for name, ref in glue.items():
        task = defs[ref["$ref"].rsplit("/", 1)[1]]["properties"]
        spec = TASKS[name]
        assert task["metrics"]["required"] == list(spec.metric_keys)
        assert task["predictions"]["items"]["properties"]["split"]["enum"] == list(
            spec.dev_splits)
        assert set(task["malformed_rows"]["required"]) == {"train", *spec.dev_splits}
        assert task["spread"]["required"] == list(spec.metric_keys)


@pytest.mark.subprocess
def test_probe_tasks_protocol_and_software_match_their_writers():
    from cramming.train.hardware import detect_hardware, software_info
    from glue_eval import PROTOCOLS
    from glue_eval.probes import PROBES
    from glue_eval.results import software

    defs = entry_schema()["$defs"]
    properties = entry_schema()["$defs"]["crammed_entry"]["properties"]
    probe_tasks = defs["probe_results"]["properties"]["tasks"]["properties"]
    assert tuple(probe_tasks) == PROBES
    for protocol in PROTOCOLS.values():
        # `seed`: the one seed of a cram-glue/1 file, still read; `seeds` is written now.
        assert set(defs["protocol"]["properties"]) == set(protocol.record(seeds=[0])) | {"seed"}
    assert set(defs["results_software"]["properties"]) == set(software())
    assert set(properties["software"]["properties"]) == set(software_info())
    from leaderboard.records import entry_hardware

    # The entry's hardware is the summary's, with the job's world size and per-rank devices.
    summary = {**detect_hardware("cpu"), "world_size": 1, "device_names": ["cpu"]}
    recorded = set(entry_hardware(summary, "summary.json"))
    assert recorded >= set(detect_hardware("cpu")) - {"cpu_name", "track", "track_reason"}
    assert set(properties["hardware"]["properties"]) == recorded | {"segments"}  # optional


def test_model_shape_is_the_summary_shape():
    from cramming import ModelConfig

    shape = entry_schema()["$defs"]["crammed_entry"]["properties"]["model"]["properties"][
        "shape"]["properties"]
    assert set(shape) <= {field.name for field in dataclasses.fields(ModelConfig)}
