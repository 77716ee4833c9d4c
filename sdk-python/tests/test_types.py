"""The SDK's types match the server's schemas (schemas.json is generated from them)."""
import json
from pathlib import Path
from typing import get_type_hints

from airlock import _types

SCHEMAS = json.loads((Path(__file__).parent.parent / "airlock" / "schemas.json").read_text())


def keys(schema: dict) -> set:
    return set(schema["properties"].keys())


def test_response_types_have_every_field_the_server_sends():
    assert set(get_type_hints(_types.Job)) == keys(SCHEMAS["Job"])
    assert set(get_type_hints(_types.JobSummary)) == keys(SCHEMAS["JobSummary"])
    assert set(get_type_hints(_types.JobList)) == keys(SCHEMAS["JobList"])
    assert set(get_type_hints(_types.JobAccepted)) == keys(SCHEMAS["JobAccepted"])
    assert set(get_type_hints(_types.JobBatchResult)) == keys(SCHEMAS["JobBatchResult"])
    item = SCHEMAS["JobBatchResult"]["properties"]["items"]["items"]["anyOf"]
    assert set(get_type_hints(_types.JobBatchItem)) == keys(item[0]) | keys(item[1])
    assert set(get_type_hints(_types.ErrorResponse)) == keys(SCHEMAS["ErrorResponse"])
    assert set(get_type_hints(_types.Runtime)) == keys(SCHEMAS["RuntimeList"]["properties"]["runtimes"]["items"])
    assert set(get_type_hints(_types.Isolation)) == keys(SCHEMAS["Job"]["properties"]["isolation"]["anyOf"][0])
    assert set(get_type_hints(_types.Timings)) == keys(SCHEMAS["Job"]["properties"]["timings"])
    assert set(get_type_hints(_types.CompileResult)) == keys(SCHEMAS["Job"]["properties"]["compile"]["anyOf"][0])
    assert set(get_type_hints(_types.TestResult)) == keys(SCHEMAS["Job"]["properties"]["tests"]["items"])


def test_request_and_event_types_match():
    assert set(get_type_hints(_types.JobRequest)) == keys(SCHEMAS["JobRequest"])
    assert set(get_type_hints(_types.Limits)) == keys(SCHEMAS["JobRequest"]["properties"]["limits"])
    assert set(get_type_hints(_types.TestCase)) == keys(SCHEMAS["JobRequest"]["properties"]["tests"]["items"])
    events = {e["properties"]["type"]["const"]: keys(e) for e in SCHEMAS["JobEvent"]["anyOf"]}
    assert events == {
        "log": set(get_type_hints(_types.LogEvent)),
        "step": set(get_type_hints(_types.StepEvent)),
        "status": set(get_type_hints(_types.StatusEvent)),
        "end": set(get_type_hints(_types.EndEvent)),
    }


def test_statuses_match():
    statuses = set(SCHEMAS["JobStatus"]["enum"])
    assert statuses == set(_types.JobStatus.__args__)
    assert _types.FINAL_STATUSES == statuses - {"queued", "running"}
