"""Where a step ran: Python version and implementation, platform, and a digest of the
installed distributions (sorted `name==version` lines), computed once per process."""

from __future__ import annotations

import functools
import hashlib
import platform
import sys
from importlib import metadata
from typing import Any


def installed_packages() -> list[str]:
    """`name==version` of every installed distribution, lower-cased names, sorted, unique."""
    lines = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata is not None else None
        if name:
            lines.add(f"{name.lower().replace('_', '-')}=={dist.version}")
    return sorted(lines)


@functools.cache
def environment() -> dict[str, Any]:
    packages = installed_packages()
    listing = "".join(f"{line}\n" for line in packages).encode()
    return {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages_sha256": hashlib.sha256(listing).hexdigest(),
        "packages_count": len(packages),
    }
