"""Write files so that a reader or a crash never sees half of one: temp file, fsync, rename."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from attn_deploy.errors import AttnDeployError


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; an existing file is replaced only on success."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise AttnDeployError(f"cannot write {str(path)!r}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # mkstemp creates 0600; give the file the mode a plain open() would (or keep the
            # mode of the file it replaces), so servers running as other users can read it
            os.fchmod(f.fileno(), _target_mode(path))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with _ignore_missing():
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise AttnDeployError(f"cannot write {str(path)!r}: {exc.strerror}") from exc
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _target_mode(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


class _ignore_missing:
    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        return et is not None and issubclass(et, FileNotFoundError)
