"""Folder options of the commands (``report --out``, ``bench --out``, ``build-engine
--cache-dir``): checked before any work, so a file given as a folder is one line, not a
traceback at the end of a long run."""
from __future__ import annotations

from pathlib import Path

from attn_deploy.errors import AttnDeployError


def output_folder(value: str | Path, option: str) -> Path:
    """``value`` as a folder, created if missing; AttnDeployError naming ``option`` when it is
    a file or cannot be created."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise AttnDeployError(f"{option} {str(value)!r}: is a file; expected a folder (created "
                              "if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AttnDeployError(f"{option} {str(value)!r}: cannot create the folder: "
                              f"{exc.strerror or exc}") from exc
    return path
