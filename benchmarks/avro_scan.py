"""The Avro field scan in C beside the generated Python scan and fastavro, in one run.

    python benchmarks/avro_scan.py [--records 2000] [--repeat 7]

Encodes ``--records`` sample records of every shipped flat schema, then times, per
record, the C scan (``exchange.avro.scan``'s default where the install built it), the
generated Python scan it falls back to, and fastavro's full decode; prints the best of
``--repeat`` rounds each, interleaved, and the ratios against the Python scan. The
router scans every record it routes once (exchange/router/routing.py).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import timeit
from pathlib import Path

# This file's directory would shadow the package when run as a script.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import fastavro

from exchange.avro import scan
from exchange.dev import sample

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "avro"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if not scan.NATIVE:
        sys.exit("the C scan is not built (no C compiler at install): nothing to compare")
    print(
        f"{'schema':34} {'fields':>6} {'bytes':>6} {'C µs':>6} {'Python µs':>9} "
        f"{'fastavro µs':>11} {'C vs Python':>11}"
    )
    for path in sorted(SCHEMAS.glob("*.avsc")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        scanner = scan.scanner_for(schema)
        if scanner is None:
            continue  # nested types: decoded, never scanned
        python = scan._compile_offsets(scanner.kinds)
        parsed = fastavro.parse_schema(schema)
        bodies = []
        for record in sample.generate(schema, args.records, seed=6):
            out = io.BytesIO()
            fastavro.schemaless_writer(out, parsed, record)
            bodies.append(out.getvalue())
        for body in bodies:  # the same answer, or this measures nothing
            if scanner.offsets(body) != python(body):
                sys.exit(f"{path.name}: the C and Python scans disagree on a body")

        def each(f, bodies=bodies):
            return lambda: [f(b) for b in bodies]

        def decode(b: bytes, parsed=parsed) -> object:
            return fastavro.schemaless_reader(io.BytesIO(b), parsed)

        best = {"c": float("inf"), "py": float("inf"), "fa": float("inf")}
        for _ in range(args.repeat):  # interleaved: the machine's load hits all three alike
            for name, f in (("c", scanner.offsets), ("py", python), ("fa", decode)):
                best[name] = min(best[name], timeit.timeit(each(f), number=1) / len(bodies))
        size = sum(map(len, bodies)) / len(bodies)
        print(
            f"{path.stem:34} {len(scanner.names):6} {size:6.0f} {best['c'] * 1e6:6.2f} "
            f"{best['py'] * 1e6:9.2f} {best['fa'] * 1e6:11.2f} {best['py'] / best['c']:10.1f}x"
        )


if __name__ == "__main__":
    main()
