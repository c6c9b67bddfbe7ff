"""Machine-readable results of validations: exit codes, a JSON file and a JUnit XML file (the
test report format every CI system reads), both written atomically.

Exit codes of ``validate``, ``export`` (when it validates) and ``report``:

- 0: every runtime that ran passed at every shape;
- 1: a parity failure: an output out of tolerance, a runtime that could not run the file, a
  block that did not export (validate, report), or no runtime ran at all (nothing proven);
- 2: bad input or usage (an unknown block, a missing file, bad shapes, a bad option);
- 3: a runtime named by ``--require`` is absent (the checks that did run all passed).
"""
from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, Sequence

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_REQUIRED_ABSENT = 0, 1, 2, 3
# characters XML 1.0 cannot hold; runtimes' error messages sometimes carry them
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def missing_required(validations: Iterable, require: Iterable[str]) -> list[tuple[str, str]]:
    """(runtime, reason) for each runtime of ``require`` that was unavailable."""
    require, seen = set(require or ()), {}
    for v in validations:
        for r in v.results:
            if r.runtime in require and r.status == "unavailable":
                seen.setdefault(r.runtime, r.message)
    return sorted(seen.items())


def failed(r) -> bool:
    """A run that neither passed nor was unavailable: out of tolerance, degenerate, an error."""
    return r.status not in ("pass", "unavailable")


def exit_code(validations: Sequence, require: Iterable[str] = ()) -> int:
    """The exit code for ``validations`` (see the module docstring)."""
    if any(not v.export_ok or any(failed(r) for r in v.results) for v in validations):
        return EXIT_FAIL
    if missing_required(validations, require):
        return EXIT_REQUIRED_ABSENT
    return EXIT_PASS if all(v.passed for v in validations) else EXIT_FAIL


def _num(x) -> float | None:
    """JSON has no NaN or Infinity; a non-finite error is null (the status says why)."""
    return float(x) if x is not None and math.isfinite(x) else None


def _row(r, require: set[str], versions: dict) -> dict:
    from attn_deploy.harness.versions import runtime_version

    c = r.comparison
    outputs = [] if c is None else [
        {"name": o.name, "passed": o.passed, "rel_l2": _num(o.rel_l2), "max_abs": _num(o.max_abs),
         "worst_index": list(o.worst_index), "worst_value": _num(o.worst_value),
         "worst_reference": _num(o.worst_reference), "reason": o.reason} for o in c.outputs]
    tol = None if c is None or not c.outputs else \
        {"rtol": _num(c.outputs[0].tolerance), "atol": c.outputs[0].atol}
    lib = runtime_version(r.runtime) if r.status != "unavailable" else None
    return {"runtime": r.runtime, "shapes": r.shapes, "status": r.status,
            "required": r.runtime in require, "message": r.message,
            "seconds": round(r.seconds, 6),
            "errors": None if c is None else {"rel_l2": _num(c.rel_l2),
                                              "max_abs": _num(c.max_abs), "outputs": outputs},
            "tolerance": tol,
            "versions": {"attn_deploy": versions["attn_deploy"], "runtime": lib}}


def results_json(validations: Sequence, *, command: str, require: Iterable[str] = ()) -> dict:
    """Every row of every validation, the verdict and the versions, as JSON-ready data."""
    from attn_deploy.harness.versions import tool_versions

    require, versions = set(require or ()), tool_versions()
    return {
        "tool": "attn_deploy", "command": command,
        "exit_code": exit_code(validations, require), "required": sorted(require),
        "missing_required": [{"runtime": rt, "reason": why}
                             for rt, why in missing_required(validations, require)],
        "versions": versions,
        "validations": [
            {"name": v.name, "onnx_path": v.onnx_path, "export_ok": v.export_ok,
             "export_error": v.export_error, "passed": v.passed, "nodes": v.node_count,
             "custom_nodes": list(v.custom_nodes), "shapes": [c[0] for c in v.cases],
             "rows": [_row(r, require, versions) for r in v.results]}
            for v in validations]}


def write_json(path: str | Path, validations: Sequence, *, command: str,
               require: Iterable[str] = ()) -> Path:
    from attn_deploy.atomic_write import atomic_write_text

    data = results_json(validations, command=command, require=require)
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _clean(text: str) -> str:
    return _XML_BAD.sub("?", text)


def _testcases(v, require: set[str]):
    """(name, seconds, kind, type, message, text) per runtime x shape; kind: None (pass),
    failure, error or skipped. A runtime that never reached a shape (unavailable, or its
    session could not be built) gets one test case per shape of the validation, all with its
    verdict."""
    from attn_deploy.harness.table import format_validation

    labels = [c[0] for c in v.cases] or ["-"]
    if not v.export_ok:
        yield ("export", v.export_seconds, "failure", "ExportFailure", v.export_error,
               v.export_error)
        return
    for r in v.results:
        table = format_validation(v, [r])
        if r.status == "pass":
            case = None, "", "", ""
        elif r.status == "unavailable" and r.runtime in require:
            message = f"required runtime {r.runtime} is absent: {r.message}"
            case = "failure", "RequiredRuntimeAbsent", message, message + "\n" + table
        elif r.status == "unavailable":
            case = "skipped", "", f"{r.runtime} unavailable: {r.message}", ""
        elif r.status == "error":  # the runtime could not run the file
            case = "error", "RuntimeError", table, table
        else:  # fail (numbers out of tolerance) or any other verdict that is not a pass
            kind_type = "ParityFailure" if r.status == "fail" else f"Parity_{r.status}"
            case = "failure", kind_type, table, table
        for label in (labels if r.shapes == "-" else [r.shapes]):
            yield (f"{r.runtime}[{label}]", r.seconds) + case


def junit_xml(validations: Sequence, *, command: str, require: Iterable[str] = ()) -> str:
    """One ``<testsuite>`` per validation, one ``<testcase>`` per runtime x shape; failures and
    errors carry the parity table (message and text), skips the reason."""
    from attn_deploy.harness.versions import tool_versions

    require = set(require or ())
    root = ET.Element("testsuites", name=f"attn_deploy {command}")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    total_time = 0.0
    for v in validations:
        suite = ET.SubElement(root, "testsuite", name=f"attn_deploy.{command}.{v.name}")
        props = ET.SubElement(suite, "properties")
        for k, val in tool_versions().items():
            ET.SubElement(props, "property", name=k, value=str(val) if val else "absent")
        counts = dict.fromkeys(totals, 0)
        seconds = 0.0
        for name, secs, kind, kind_type, message, text in _testcases(v, require):
            case = ET.SubElement(suite, "testcase", classname=f"attn_deploy.{v.name}",
                                 name=_clean(name), time=f"{secs:.6f}")
            counts["tests"] += 1
            seconds += secs
            if kind is not None:
                counts["skipped" if kind == "skipped" else kind + "s"] += 1
                el = ET.SubElement(case, kind, message=_clean(message))
                if kind != "skipped":
                    el.set("type", kind_type)
                    el.text = _clean(text)
        for k, n in counts.items():
            suite.set(k, str(n))
            totals[k] += n
        suite.set("time", f"{seconds:.6f}")
        total_time += seconds
    for k, n in totals.items():
        root.set(k, str(n))
    root.set("time", f"{total_time:.6f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit_xml(path: str | Path, validations: Sequence, *, command: str,
                    require: Iterable[str] = ()) -> Path:
    from attn_deploy.atomic_write import atomic_write_text

    return atomic_write_text(path, junit_xml(validations, command=command, require=require))
