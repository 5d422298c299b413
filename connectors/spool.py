"""A temporary file of prepared records: a whole import checked first, then sent, in bounded memory.

A file import validates every row before it publishes any; keeping a
million encoded records in memory until then would not be bounded. The
records go to an anonymous temporary file instead (deleted by the system
when closed, even after a crash) and are read back batch by batch. Only
the record of each topic with the largest size is kept in memory, to check
it against the topic's limit once the broker can be asked.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from exchange.bus import limits
from exchange.bus.envelope import PUBLISHER, RECORD_ID
from exchange.clients.publisher import Prepared

_HEAD = struct.Struct("<IIIi")  # key, value, record id lengths; line (-1: none)


class Spool:
    """Prepared records of one topic and department, appended then read back in order."""

    def __init__(self, topic: str, resource: str, department: str) -> None:
        self.topic = topic
        self.resource = resource
        self._publisher = department.encode()
        self._fh: BinaryIO = tempfile.TemporaryFile(prefix="exchange-import-")  # noqa: SIM115
        self.count = 0
        self.bytes = 0
        #: the record with the largest framed size, checked against the topic's limit later
        self.largest: Prepared | None = None
        self._largest_size = -1
        self._reading: Iterator[Prepared] | None = None

    def append(self, p: Prepared) -> None:
        if p.topic != self.topic:
            raise ValueError(f"a record for {p.topic}, not {self.topic}")
        if p.value is None:
            raise ValueError("a file's records are spooled, never a deletion")
        rid = p.record_id.encode()
        self._fh.write(
            _HEAD.pack(len(p.key), len(p.value), len(rid), -1 if p.line is None else p.line)
        )
        self._fh.write(p.key)
        self._fh.write(p.value)
        self._fh.write(rid)
        self.count += 1
        self.bytes += len(p.value)
        size = limits.framed_size(p)
        if size > self._largest_size:
            self._largest_size, self.largest = size, p

    def _records(self) -> Iterator[Prepared]:
        self._fh.flush()
        self._fh.seek(0)
        read = self._fh.read
        for _ in range(self.count):
            klen, vlen, rlen, line = _HEAD.unpack(read(_HEAD.size))
            key, value, rid = read(klen), read(vlen), read(rlen).decode()
            yield Prepared(
                topic=self.topic,
                key=key,
                value=value,
                record_id=rid,
                headers=[(RECORD_ID, rid.encode()), (PUBLISHER, self._publisher)],
                resource=self.resource,
                line=None if line < 0 else line,
            )

    def batch(self, size: int) -> list[Prepared]:
        """The next ``size`` records (fewer at the end, none when all were read)."""
        if self._reading is None:
            self._reading = self._records()
        out: list[Prepared] = []
        for p in self._reading:
            out.append(p)
            if len(out) >= size:
                break
        return out

    def close(self) -> None:
        self._fh.close()
