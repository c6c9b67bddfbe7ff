"""Write files so that a reader or a crash never sees half of one: temp file, fsync, rename.

Only a regular file (or nothing) is ever replaced. Anything else at the target (a folder, a FIFO,
a device node such as ``/dev/null``, a socket) is refused with an error instead of being turned
into a regular file. A symlink is written through: its final target is replaced atomically (the
temp file goes beside the target, not beside the link), so the link keeps pointing at the new
content; a dangling link creates its target.

:func:`staged_file` gives a temp path beside a target for content that is checked before it may
replace the target (an exported model validated first); :func:`promote` moves it into place.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from attn_deploy.errors import AttnDeployError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def write_target(path: str | Path) -> Path:
    """The file a write to ``path`` replaces: ``path`` itself, or the final target of a
    symlink. Raises when something other than a regular file is there."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        if not target.parent.is_dir():
            raise AttnDeployError(f"cannot write {str(path)!r}: folder {str(target.parent)!r} "
                                  "does not exist") from None
        return target
    except OSError as exc:
        raise AttnDeployError(f"cannot write {str(path)!r}: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        via = f" (the target of symlink {str(path)!r})" if target != path else ""
        raise AttnDeployError(f"cannot write {str(target)!r}{via}: it is {kind}; attn_deploy "
                              "only replaces regular files. Choose a file path")
    return target


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; an existing file is replaced only on success.
    Returns ``path`` (for a symlink: the link, whose target now holds ``data``)."""
    with staged_file(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
        promote(tmp, path)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_file(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh, empty temp file beside the target of ``path`` (same folder, so the final
    rename is atomic); removed on exit unless :func:`promote` (or the caller) moved it."""
    target = write_target(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise AttnDeployError(f"cannot write {str(path)!r}: {exc.strerror}") from exc
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def promote(staged: str | Path, path: str | Path) -> Path:
    """Move the finished file ``staged`` over ``path`` (through a symlink to its target),
    fsynced and with the mode a plain ``open()`` would give it (or the mode of the file it
    replaces). The target is checked again: it must still be a regular file or nothing."""
    target = write_target(path)
    try:
        # mkstemp creates 0600; servers running as other users must be able to read the file
        os.chmod(staged, _target_mode(target))
        with open(staged, "rb") as f:
            os.fsync(f.fileno())
        os.replace(staged, target)
    except OSError as exc:
        raise AttnDeployError(f"cannot write {str(path)!r}: {exc.strerror}") from exc
    return Path(path)


def failed_path(path: str | Path) -> Path:
    """Where a model that failed its checks is kept: ``NAME.failed.onnx`` beside ``path``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.failed{path.suffix}")


def keep_failed(staged: str | Path, path: str | Path) -> Path:
    """Keep the rejected file ``staged`` as ``NAME.failed.SUFFIX`` beside ``path`` (the
    previous file at ``path`` stays as it was); returns where it went."""
    return promote(staged, failed_path(path))


def _target_mode(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
