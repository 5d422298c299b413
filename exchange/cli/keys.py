"""``exchange keys``: Ed25519 keys with which departments sign their commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from exchange.catalog import signing
from exchange.cli.common import fail

app = typer.Typer(help="Keys that sign a department's commands (see README: signed commands).")


@app.command()
def generate(
    department: Annotated[str, typer.Option("--as", help="The department the key is for.")],
    out: Annotated[Path, typer.Option(help="Where to write the private key (PEM, mode 600).")],
) -> None:
    """Make a key pair: the private key goes to --out, the public key line is printed.

    Put the printed line under the department in departments.yaml and load the
    catalog; from then on its commands are refused unless signed with --key OUT.
    A department marked 'catalog_admin: true' as well signs catalog loads with it
    ('exchange catalog load DIR --as DEPT --key OUT').
    """
    if out.exists():
        raise fail(f"{out} exists: not overwriting a key")
    pem, public = signing.generate()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    typer.echo(f"private key of {department} written to {out}; add to departments.yaml:")
    typer.echo(f"    public_key: {public}")
