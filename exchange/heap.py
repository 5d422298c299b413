"""The start-up heap of a long-running process, left out of garbage collection.

A service builds most of its objects at start (catalog, grant book, compiled
views, schemas: about 100,000 objects in a router or the gateway), then makes
short-lived ones per record or request. Python's full collections walk every
object there is: in the gateway under load a pause of up to 125 ms every few
seconds (its p99), and in a router's recompile of 3,600 views a collection or
two walking everything the process holds. :func:`freeze` after start-up moves
the objects alive then to a generation no collection scans (what the Python
documentation advises for long-lived start-up state); objects made later are
collected as usual. The cost: a reference cycle among start-up objects that
becomes garbage later is not freed (objects without cycles, most of them, are
freed by reference counting as ever).
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """Collect what is garbage now, then leave every object alive out of later collections."""
    gc.collect()
    gc.freeze()
