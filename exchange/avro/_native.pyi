"""Types of the C offset scan (exchange/avro/_native.c)."""

from collections.abc import Callable, Sequence
from typing import Any

class Layout:
    """Called with an Avro body, the offsets of its fields; ``fallback`` answers any body
    that is not certainly well formed."""

    def __init__(
        self, layout: Sequence[tuple[Any, ...]], fallback: Callable[[Any], list[int]]
    ) -> None: ...
    def __call__(self, body: Any) -> list[int]: ...
