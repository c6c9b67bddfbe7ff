"""Exit codes, JSON and JUnit XML of validations, on validations built from real comparisons
(no export): every row present, failures carrying the table, skips the reason."""
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from attn_deploy.harness.compare import compare
from attn_deploy.harness.result_files import (EXIT_FAIL, EXIT_PASS, EXIT_REQUIRED_ABSENT,
                                              exit_code, junit_xml, results_json, write_json,
                                              write_junit_xml)
from attn_deploy.harness.table import format_validation
from attn_deploy.harness.validate import RunResult, Validation

SHAPES = ["x:2x4", "x:3x4"]


def _validation(drift: float = 0.0, name: str = "net") -> Validation:
    """ort-cpu at two shapes (the second off by ``drift``), tensorrt unavailable, ort-cuda
    whose session could not be built."""
    rng = np.random.default_rng(0)
    v = Validation(name, f"{name}.onnx", export_ok=True)
    for i, label in enumerate(SHAPES):
        ref = rng.standard_normal((2 + i, 4)).astype(np.float32)
        out = ref + (drift if i else 0.0)
        v.cases.append((label, {"x": ref}, {"y": ref}))
        cmp = compare({"y": out}, {"y": ref}, "fp32")
        v.results.append(RunResult("ort-cpu", label, "pass" if cmp else "fail", cmp,
                                   "" if cmp else str(cmp), 0.01))
    v.results.append(RunResult("tensorrt", "-", "unavailable", message="no GPU\x1b here"))
    return v


def _with_error(v: Validation) -> Validation:
    v.results.append(RunResult("ort-cuda", "-", "error", message="RuntimeError: no session"))
    return v


def test_exit_codes_order_failure_then_required_then_pass():
    assert exit_code([_validation()]) == EXIT_PASS
    assert exit_code([_validation()], ["tensorrt"]) == EXIT_REQUIRED_ABSENT
    # a parity failure outranks an absent required runtime: it is a finding about the model
    assert exit_code([_validation(1e-2)], ["tensorrt"]) == EXIT_FAIL
    assert exit_code([_with_error(_validation())]) == EXIT_FAIL
    assert exit_code([Validation("net", export_error="boom")]) == EXIT_FAIL
    nothing_ran = Validation("net", export_ok=True,
                             results=[RunResult("tensorrt", "-", "unavailable", message="x")])
    assert exit_code([nothing_ran]) == EXIT_FAIL
    assert exit_code([_validation(), _validation(1e-2)]) == EXIT_FAIL


def test_json_has_every_row_with_errors_tolerance_and_versions(tmp_path):
    path = write_json(tmp_path / "r.json", [_validation(1e-2)], command="validate",
                      require=["tensorrt"])
    data = json.loads(path.read_text())  # strict JSON: no NaN/Infinity tokens
    assert data["exit_code"] == EXIT_FAIL and data["required"] == ["tensorrt"]
    assert data["missing_required"][0]["runtime"] == "tensorrt"
    assert data["versions"]["attn_deploy"] and data["versions"]["onnxruntime"]
    (val,) = data["validations"]
    assert val["shapes"] == SHAPES and val["passed"] is False
    rows = val["rows"]
    assert [(r["runtime"], r["shapes"], r["status"]) for r in rows] == [
        ("ort-cpu", "x:2x4", "pass"), ("ort-cpu", "x:3x4", "fail"), ("tensorrt", "-",
                                                                     "unavailable")]
    bad = rows[1]
    assert bad["errors"]["max_abs"] == pytest.approx(1e-2, rel=1e-3)
    assert bad["errors"]["outputs"][0]["worst_index"] and bad["tolerance"]["rtol"] == 1e-5
    assert bad["versions"]["runtime"].startswith("onnxruntime ")
    assert rows[2]["required"] is True and rows[2]["errors"] is None
    assert rows[2]["versions"]["runtime"] is None


def test_json_writes_non_finite_errors_as_null():
    v = _validation()
    ref = np.ones((2, 4), np.float32)
    out = ref.copy()
    out[0, 0] = np.nan
    v.results[0] = RunResult("ort-cpu", SHAPES[0], "fail", compare({"y": out}, {"y": ref}),
                             "nan")
    text = json.dumps(results_json([v], command="validate"), allow_nan=False)
    row = json.loads(text)["validations"][0]["rows"][0]
    assert row["errors"]["rel_l2"] is None and "non-finite" in \
        row["errors"]["outputs"][0]["reason"]


def test_junit_one_case_per_runtime_and_shape(tmp_path):
    v = _with_error(_validation(1e-2))
    path = write_junit_xml(tmp_path / "r.xml", [v, _validation(name="other")],
                           command="validate", require=["tensorrt"])
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["attn_deploy.validate.net",
                                               "attn_deploy.validate.other"]
    cases = {c.get("name"): c for c in suites[0].findall("testcase")}
    # runtimes that never reached a shape get a test case per shape of the validation
    assert sorted(cases) == sorted(f"{rt}[{s}]" for rt in ("ort-cpu", "tensorrt", "ort-cuda")
                                   for s in SHAPES)
    assert (suites[0].get("tests"), suites[0].get("failures"), suites[0].get("errors"),
            suites[0].get("skipped")) == ("6", "3", "2", "0")
    assert len(cases["ort-cpu[x:2x4]"]) == 0  # passed: no child
    fail = cases["ort-cpu[x:3x4]"].find("failure")
    assert fail.get("type") == "ParityFailure"
    # the message is the table validate prints for that row (newlines kept by the escaping)
    assert fail.get("message") == format_validation(v, [v.results[1]]) == fail.text
    assert "worst at" in fail.text and "rel L2" in fail.text
    # a failing row shows its errors (a failed Comparison is falsy, not absent)
    c = v.results[1].comparison
    assert f"fail          {c.rel_l2:.2e}  {c.max_abs:.2e}" in fail.text
    req = cases["tensorrt[x:2x4]"].find("failure")
    assert req.get("type") == "RequiredRuntimeAbsent"
    assert "required runtime tensorrt is absent: no GPU? here" in req.get("message")
    assert cases["ort-cuda[x:3x4]"].find("error").get("type") == "RuntimeError"
    assert root.get("tests") == "10" and root.get("failures") == "5"
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["attn_deploy"] and props["onnx"]
    # not required: skipped with the reason
    suite = ET.fromstring(junit_xml([_validation()], command="validate")).find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["tensorrt[x:2x4]"].find("skipped").get("message") == \
        "tensorrt unavailable: no GPU? here"
    assert (suite.get("tests"), suite.get("skipped"), suite.get("failures")) == ("4", "2", "0")


def test_junit_failed_export_is_one_failure():
    root = ET.fromstring(junit_xml([Validation("net", export_error="exporter said no")],
                                   command="export"))
    (case,) = root.iter("testcase")
    assert case.get("name") == "export"
    assert case.find("failure").get("message") == "exporter said no"
