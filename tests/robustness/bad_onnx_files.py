"""Bad ONNX files, each made from a good export: name -> (how to make it, what the one-line
error must say). Shared by the file-handling tests and the README's reliability table."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import onnx
from onnx import helper


def _mutate(good: Path, out: Path, change: Callable[[onnx.ModelProto], None]) -> None:
    proto = onnx.load(str(good))
    change(proto)
    onnx.save(proto, str(out))


def _set_dim(value: int):
    def change(proto):
        proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value = value
    return change


def _unknown_domain(proto):
    node = proto.graph.node[0]
    node.domain = "com.example.secret"
    proto.opset_import.append(helper.make_opsetid("com.example.secret", 1))


def _external(good: Path, out: Path, keep_data: bool) -> None:
    proto = onnx.load(str(good))
    onnx.save(proto, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
              location=out.name + ".data", size_threshold=256)  # small axes stay inline (ORT)
    if not keep_data:
        (out.parent / (out.name + ".data")).unlink()


def _huge_metadata(proto):
    for p in proto.metadata_props:
        if p.key == "attn_deploy_shapes":
            record = json.loads(p.value)
            record["dims"] = {s: 4096 for s in record["dims"]}
            p.value = json.dumps(record)


def _bytes(data: bytes):
    return lambda good, out: out.write_bytes(data)


def _truncated(good: Path, out: Path) -> None:
    out.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])


def _bit_flipped(good: Path, out: Path) -> None:
    data = bytearray(good.read_bytes())
    for i in range(0, 64):  # the header and the first graph fields
        data[i] ^= 0xFF
    out.write_bytes(bytes(data))


# name -> (maker(good, out), fragment of the expected error)
CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "empty": (_bytes(b""), "empty file"),
    "random bytes": (_bytes(bytes(range(256)) * 7), "not an ONNX model"),
    "text": (_bytes(b"name: not a model\n"), "not an ONNX model"),
    "truncated": (_truncated, "not an ONNX model"),
    "bit-flipped": (_bit_flipped, "not an ONNX model"),
    "IR version 99": (lambda g, o: _mutate(g, o, lambda p: setattr(p, "ir_version", 99)),
                      "IR version 99"),
    "opset 99": (lambda g, o: _mutate(g, o, lambda p: setattr(p.opset_import[0], "version", 99)),
                 "opset 99"),
    "unknown domain": (lambda g, o: _mutate(g, o, _unknown_domain), "unknown domain"),
    "negative dim": (lambda g, o: _mutate(g, o, _set_dim(-5)), "declares dim -5"),
    "huge dim": (lambda g, o: _mutate(g, o, _set_dim(2**40)), "declares dim"),
    "missing external data": (lambda g, o: _external(g, o, keep_data=False),
                              "is missing next to the model"),
    "a folder": (lambda g, o: o.mkdir(), "not a regular file"),
}
# For validate only: files that are well formed but ask for too much.
VALIDATE_CASES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "metadata asking for 2 TiB": (lambda g, o: _mutate(g, o, _huge_metadata), "GiB"),
}


COMMANDS = {
    "validate": lambda f, tmp: ["validate", str(f), "--runtimes", "onnx-reference"],
    "trt-check": lambda f, tmp: ["trt-check", str(f)],
    "build-engine": lambda f, tmp: ["build-engine", str(f), "--cache-dir", str(tmp / "cache")],
    "triton-repo": lambda f, tmp: ["triton-repo", str(f), "-o", str(tmp / "repo")],
}
CATEGORY = "ONNX file (validate, trt-check, build-engine, triton-repo)"


def run_command(args: list[str]) -> tuple[int | None, str, str]:
    """(exit code or None if an exception escaped, stdout, stderr) of the CLI, in process."""
    import contextlib
    import io
    import traceback

    from attn_deploy.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except Exception:  # noqa: BLE001 - an escaping exception is the finding
            traceback.print_exc()
            code = None
    return code, out.getvalue(), err.getvalue()


def outcome(code, out: str, err: str, path: Path, fragment: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    if code is None:
        return "traceback"
    if code != 2 or "PASS" in out:
        return "accepted"
    clear = (len(lines) == 1 and lines[0].startswith("attn-deploy: error:")
             and str(path) in lines[0] and fragment in lines[0])
    return "clear error" if clear else "error without the name"


def counts() -> dict[str, dict[str, int]]:
    """Every case of CASES through every command (VALIDATE_CASES through validate), measured."""
    import tempfile

    import attn_deploy as ad
    tally: dict[str, int] = {"tried": 0}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        good = ad.export_block("se", tmp / "good.onnx")
        runs = [(name, make, frag, cmd) for name, (make, frag) in CASES.items() for cmd in COMMANDS]
        runs += [(name, make, frag, "validate") for name, (make, frag) in VALIDATE_CASES.items()]
        for i, (name, make, fragment, command) in enumerate(runs):
            work = tmp / f"case{i}"
            (work / "repo").mkdir(parents=True)
            bad = work / "bad.onnx"
            make(good, bad)
            result = outcome(*run_command(COMMANDS[command](bad, work)), bad, fragment)
            tally["tried"] += 1
            tally[result] = tally.get(result, 0) + 1
    return {CATEGORY: tally}
