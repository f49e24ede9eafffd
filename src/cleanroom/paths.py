"""Where cleanroom keeps what it builds and remembers: one cache directory, outside any git checkout."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Where fixtures are built: ``$CLEANROOM_CACHE`` or ``~/.cache/cleanroom`` (never inside git)."""
    env = os.environ.get("CLEANROOM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cleanroom"


__all__ = ["cache_root"]
