"""Writing files so that a killed run never leaves half of one.

Every file the package writes (decoded data caches, checkpoints, training histories, the
weights a notebook stores) goes through :func:`atomic_write`: the content goes to a
temporary file beside the target, which then replaces the target in one rename.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)``, then rename the temporary file to ``path``.

    The temporary name holds the process id, so processes writing the same file at once
    do not collide; the last rename wins and every reader sees a whole file. The folder
    is created when missing. If ``write`` fails, the temporary file is removed and the
    error propagates; an older file at ``path`` is left untouched.

    Example:
        >>> import json, tempfile
        >>> target = Path(tempfile.mkdtemp()) / "history.json"
        >>> atomic_write(target, lambda tmp: tmp.write_text(json.dumps({"epoch": [1]}))).name
        'history.json'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
