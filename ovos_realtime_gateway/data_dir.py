"""The data dir holds keys' hashes, conversations and the TLS key: only its owner may read it.

Directories are 0700 and files 0600, created so and tightened at start when an older version (or
a umask) left them readable by others. A directory the gateway does not own, or a shared sticky
one such as `/tmp`, is left as it is, with a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("ovos_realtime.store")

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) if needed; the leaf is 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty if needed; it is 0600 (a file that exists is tightened, never emptied)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    _tighten(path, FILE_MODE)
    return path


def tighten_file(path: Path) -> Path:
    """Make an existing file 0600 without opening it. For files sqlite holds locks on (the store's
    -wal and -shm): closing any descriptor of a file drops all of this process's POSIX locks on it,
    after which another process's sqlite takes itself for the last user and deletes the WAL."""
    _tighten(path, FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path`, readable by its owner only from the first byte on."""
    private_file(path)
    with open(path, "wb") as out:
        out.write(data)


def _tighten(path: Path, mode: int) -> None:
    st = path.stat()
    current = stat.S_IMODE(st.st_mode)
    if not current & ~mode:
        return
    if st.st_uid != os.getuid() or current & stat.S_ISVTX:
        log.warning("%s is readable by others (%o) and not the gateway's own; left as it is", path, current)
        return
    path.chmod(current & mode)
    log.info("tightened %s from %o to %o", path, current, current & mode)
