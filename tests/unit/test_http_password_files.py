"""Passwords checked against the files 'exchange acls --apply' writes: read again when changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from exchange.http.auth import PasswordFiles


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def test_a_changed_or_deleted_password_file_counts_from_the_next_check(
    tmp_path: Path,
) -> None:
    files = PasswordFiles(tmp_path)
    f = tmp_path / "hrss.password"
    f.write_text("old-secret\n")
    _age(f, 60)
    assert await files.check("hrss", "old-secret")
    assert await files.check("hrss", "old-secret")  # from the cache: the file did not change
    assert not await files.check("hrss", "wrong")
    f.write_text("new-secret\n")  # same length, same inode: its modification time changed
    assert not await files.check("hrss", "old-secret")
    assert await files.check("hrss", "new-secret")
    f.unlink()
    assert not await files.check("hrss", "new-secret")
    assert not await files.check("nobody", "")


async def test_a_file_changed_twice_within_the_clock_granularity_is_read_again(
    tmp_path: Path,
) -> None:
    files = PasswordFiles(tmp_path)
    f = tmp_path / "hrss.password"
    f.write_text("first-one\n")
    assert await files.check("hrss", "first-one")
    stamp = f.stat().st_mtime_ns
    f.write_text("second-2a\n")  # same size, same inode
    os.utime(f, ns=(stamp, stamp))  # and the same stamp, as a coarse clock may give
    assert await files.check("hrss", "second-2a")
    assert not await files.check("hrss", "first-one")
