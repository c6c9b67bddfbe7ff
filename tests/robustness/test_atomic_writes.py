"""The atomic writer replaces a regular file or nothing: a FIFO, a device node, a folder or a
socket at the target is an error and stays as it was; a symlink is written through to its
target; no temp file or temp folder survives a failure, a validation or a report."""
import os
import socket
import stat
import tempfile

import pytest
import torch

import attn_deploy as ad
from attn_deploy.atomic_write import atomic_write_bytes, atomic_write_text


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_regular_file_replaced_and_mode_kept(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    os.chmod(p, 0o640)
    atomic_write_text(p, "new")
    assert p.read_text() == "new" and stat.S_IMODE(os.stat(p).st_mode) == 0o640
    assert not _leftovers(tmp_path)


def _fifo(path):
    os.mkfifo(path)
    return "a FIFO"


def _folder(path):
    path.mkdir()
    return "a folder"


def _socket(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return "a socket"


def _char_device(path):
    try:  # a private node with /dev/null's numbers: the case of `-o /dev/null` run as root
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return "a character device"


@pytest.mark.parametrize("make", [_fifo, _folder, _socket, _char_device])
def test_non_regular_target_is_refused_and_left_alone(tmp_path, make):
    target = tmp_path / "model.onnx"
    kind = make(target)
    mode = os.lstat(target).st_mode
    with pytest.raises(ad.AttnDeployError, match=f"it is {kind}.*only replaces regular files"):
        atomic_write_bytes(target, b"onnx")
    assert os.lstat(target).st_mode == mode and not _leftovers(tmp_path)
    # the exporter refuses before the (long) export
    with pytest.raises(ad.AttnDeployError, match="only replaces regular files"):
        ad.export_onnx(torch.nn.ReLU(), torch.randn(2, 3), target, input_names=["x"],
                       output_names=["y"])
    assert os.lstat(target).st_mode == mode


def test_symlink_is_written_through_to_its_target(tmp_path):
    real = tmp_path / "store" / "model.onnx"
    real.parent.mkdir()
    real.write_bytes(b"v1")
    link = tmp_path / "current.onnx"
    link.symlink_to(real)
    atomic_write_bytes(link, b"v2")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"v2" and link.read_bytes() == b"v2"
    assert not _leftovers(tmp_path) and not _leftovers(real.parent)
    dangling = tmp_path / "next.onnx"
    dangling.symlink_to(tmp_path / "store" / "new.onnx")
    atomic_write_bytes(dangling, b"v3")
    assert (tmp_path / "store" / "new.onnx").read_bytes() == b"v3" and dangling.is_symlink()


def test_symlink_to_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "out.onnx").symlink_to(tmp_path / "pipe")
    with pytest.raises(ad.AttnDeployError, match="target of symlink .*FIFO"):
        atomic_write_bytes(tmp_path / "out.onnx", b"x")


def test_failed_rename_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    p = tmp_path / "a.onnx"
    p.write_bytes(b"old")

    def broken(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(ad.AttnDeployError, match="No space left"):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"old" and not _leftovers(tmp_path)


def test_validate_block_and_report_leave_no_temp_folder(tmp_path, monkeypatch):
    from attn_deploy.cli import main
    from attn_deploy.harness.validate import validate_block

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    v = validate_block("se", runtimes=["ort-cpu"])
    assert v.passed and v.onnx_path is None
    assert main(["report", "--keys", "se", "--runtimes", "ort-cpu", "--no-latency",
                 "--out", str(tmp_path / "reports")]) == 0
    # (torch keeps its own compile cache there, torchinductor_<user>: not ours)
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor")] == []


@pytest.mark.parametrize("make", [_fifo, lambda p: p.symlink_to(p.parent / "elsewhere")])
def test_triton_repo_refuses_what_is_not_a_model_folder(tmp_path, make):
    from attn_deploy.deploy.triton_repo import write_triton_repo

    onnx_file = tmp_path / "net.onnx"
    ad.export_onnx(torch.nn.ReLU(), torch.randn(2, 3), onnx_file, input_names=["x"],
                   output_names=["y"])
    repo = tmp_path / "repo"
    repo.mkdir()
    make(repo / "net")
    with pytest.raises(ad.AttnDeployError, match="not a model folder"):
        write_triton_repo(onnx_file, repo, overwrite=True)
    assert sorted(p.name for p in repo.iterdir()) == ["net"]
