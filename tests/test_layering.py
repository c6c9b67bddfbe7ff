"""Layering of the package, read from its source: the command line sits on top (nothing below
imports ``attn_deploy.cli``), and the block metadata of an exported file has one writer
(``export_block``) and one reader (``registry.spec_from_onnx``); its recorded sizes, one module
(``shape_record``)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "attn_deploy"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE.parent).as_posix(), ast.parse(path.read_text())


def _imported(tree) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_nothing_below_the_command_line_imports_it():
    offenders = {path: sorted(n for n in _imported(tree) if n.split(".")[:2] ==
                              ["attn_deploy", "cli"])
                 for path, tree in _modules() if not path.startswith("attn_deploy/cli/")}
    assert {p: n for p, n in offenders.items() if n} == {}
    # the scan sees imports inside functions too (where the package imports lazily)
    assert "attn_deploy.cli.result_options" in _imported(ast.parse(
        "def f():\n    from attn_deploy.cli.result_options import finish\n"))


def test_block_metadata_keys_have_one_writer_and_one_reader():
    """Anyone else wanting the block of a file calls spec_from_onnx (tests may look inside)."""
    keys = {"attn_deploy_block", "attn_deploy_config"}
    where = set()
    for path, tree in _modules():
        # getattr(model, "attn_deploy_config"): the module attribute create() sets, not metadata
        attribute = {id(n.args[1]) for n in ast.walk(tree) if isinstance(n, ast.Call)
                     and getattr(n.func, "id", None) == "getattr" and len(n.args) > 1}
        if any(isinstance(n, ast.Constant) and n.value in keys and id(n) not in attribute
               for n in ast.walk(tree)):
            where.add(path)
    assert sorted(where) == ["attn_deploy/export/onnx_export.py", "attn_deploy/modules/registry.py"]


def test_the_shape_record_key_lives_in_one_module():
    where = sorted({path for path, tree in _modules() for n in ast.walk(tree)
                    if isinstance(n, ast.Constant) and n.value == "attn_deploy_shapes"})
    assert where == ["attn_deploy/shape_record.py"]
