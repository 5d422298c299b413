"""Check Kubernetes manifests offline against the schemas the API server and Strimzi enforce.

``python -m exchange.dev.k8s_check FILE...`` reads every YAML document of
every file and checks it against:

* built-in kinds (Deployment, NetworkPolicy, PodDisruptionBudget, ...): the
  Kubernetes OpenAPI schemas that the ``kubernetes-validate`` package ships,
  strict (an unknown field is an error, as ``kubectl apply --validate=strict``);
* Strimzi kinds (Kafka, KafkaNodePool, KafkaTopic, KafkaUser): the
  CustomResourceDefinitions Strimzi's own CRD generator writes from the
  ``io.strimzi:api`` model (``deploy/k8s/schemas/pom.xml``), fetched with Maven
  once into ``.cache/strimzi/`` and generated there; checked strictly too
  (the API server would prune an unknown field silently; here it is an error);
* every object's ``metadata.name``: a DNS subdomain, as Kubernetes requires.

It prints one line per problem (file, document number, kind/name, field path,
what is wrong) and exits 1 if there is any, 0 otherwise. A development tool,
in the test extra: ``pip install -e '.[test]'``.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from exchange.dev.kafka import ROOT, KafkaEngineError, fetch_jars, java
from exchange.errors import ExchangeError

STRIMZI_POM = ROOT / "deploy" / "k8s" / "schemas" / "pom.xml"
STRIMZI_CACHE = ROOT / ".cache" / "strimzi"
STRIMZI_GROUP = "kafka.strimzi.io"
#: Strimzi kind -> the model class its CRD is generated from
STRIMZI_KINDS = {
    "Kafka": "io.strimzi.api.kafka.model.kafka.Kafka",
    "KafkaNodePool": "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
    "KafkaTopic": "io.strimzi.api.kafka.model.topic.KafkaTopic",
    "KafkaUser": "io.strimzi.api.kafka.model.user.KafkaUser",
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ManifestError(ExchangeError):
    """The schemas could not be had (no Maven, no Java, no network the first time)."""


@dataclass(frozen=True)
class Problem:
    file: str
    document: int
    what: str
    path: str
    message: str

    def __str__(self) -> str:
        at = f" at {self.path}" if self.path else ""
        return f"{self.file}: document {self.document} ({self.what}){at}: {self.message}"


# --- the Strimzi CRDs ---------------------------------------------------------------------


def strimzi_version(pom: Path = STRIMZI_POM) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(pom).getroot()  # noqa: S314 - the project's own pom
    for dep in root.iterfind("m:dependencies/m:dependency", ns):
        if dep.findtext("m:artifactId", namespaces=ns) == "api":
            return str(dep.findtext("m:version", namespaces=ns))
    raise ManifestError(f"{pom} names no io.strimzi:api")


def strimzi_crds(cache_dir: Path = STRIMZI_CACHE, pom: Path = STRIMZI_POM) -> Path:
    """The folder of the generated CRDs (``<Kind>.yaml``), made the first time (idempotent)."""
    version = strimzi_version(pom)
    crds = cache_dir / version / "crds"
    if crds.is_dir():
        return crds
    try:
        jars = fetch_jars(cache_dir / version, pom, version="jars")
        launcher = java()
    except KafkaEngineError as exc:
        raise ManifestError(str(exc)) from None
    tmp = Path(tempfile.mkdtemp(prefix=".crds-", dir=cache_dir / version))
    args = [launcher, "-cp", f"{jars}/*", "io.strimzi.crdgenerator.CrdGenerator", "--yaml"]
    args += [f"{cls}={tmp / kind}.yaml" for kind, cls in STRIMZI_KINDS.items()]
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
    missing = [k for k in STRIMZI_KINDS if not (tmp / f"{k}.yaml").exists()]
    if done.returncode != 0 or missing:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ManifestError(
            f"Strimzi's CRD generator failed (exit {done.returncode}, no CRD for "
            f"{', '.join(missing) or 'none'}): {done.stderr.strip()[-1500:]}"
        )
    try:
        tmp.rename(crds)
    except OSError:  # another process made it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return crds


def strict(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` wherever properties are listed and the
    CRD does not keep unknown fields (``x-kubernetes-preserve-unknown-fields``)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _load_crd(crds: Path, kind: str) -> Any:
    """The CRD of ``kind``, from a JSON copy made the first time (YAML of 0.5 MB parses slowly)."""
    copy_path = crds / f"{kind}.json"
    if copy_path.exists():
        return json.loads(copy_path.read_text())
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((crds / f"{kind}.yaml").read_text(), Loader=loader)  # noqa: S506 - safe loader
    tmp = copy_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(crd))
    tmp.replace(copy_path)
    return crd


@cache
def _strimzi_schemas(crds: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict JSON schema of that version of the CRD."""
    out = {}
    for kind in STRIMZI_KINDS:
        crd = _load_crd(crds, kind)
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            # metadata is the API server's (checked below), not the CRD's
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            out[(f"{STRIMZI_GROUP}/{version['name']}", kind)] = strict(schema)
    return out


# --- checking -----------------------------------------------------------------------------


def _path(parts: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def check_document(doc: Any, crds: Path | None) -> list[tuple[str, str]]:
    """(field path, message) of every problem of one manifest."""
    import jsonschema
    import kubernetes_validate

    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        return [("", "not a Kubernetes object (no apiVersion and kind)")]
    problems = []
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        problems.append(("metadata.name", f"{name!r} is not a DNS subdomain (a-z, 0-9, '-', '.')"))
    if doc["apiVersion"].startswith(STRIMZI_GROUP + "/"):
        if crds is None:
            return [*problems, ("", "a Strimzi kind, and no Strimzi CRDs to check it against")]
        schema = _strimzi_schemas(crds).get((doc["apiVersion"], doc["kind"]))
        if schema is None:
            return [*problems, ("", f"Strimzi has no {doc['kind']} in {doc['apiVersion']}")]
        validator = jsonschema.Draft7Validator(schema)
        problems += [(_path(e.absolute_path), e.message) for e in validator.iter_errors(doc)]
        return problems
    try:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        problems.append((_path(exc.path), exc.message))
    except kubernetes_validate.SchemaNotFoundError as exc:
        problems.append(("", f"no Kubernetes schema for it: {exc}"))
    return problems


def documents(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not YAML: {exc}") from None
    yield from ((i, d) for i, d in enumerate(docs, 1) if d is not None)


def check_files(paths: list[Path], crds: Path | None = None) -> list[Problem]:
    """Every problem of every document of ``paths`` (Strimzi CRDs made if a file needs them)."""
    loaded = [(p, list(documents(p))) for p in paths]
    wants_strimzi = any(
        isinstance(d, dict) and str(d.get("apiVersion", "")).startswith(STRIMZI_GROUP)
        for _, docs in loaded
        for _, d in docs
    )
    if crds is None and wants_strimzi:
        crds = strimzi_crds()
    out = []
    for path, docs in loaded:
        for number, doc in docs:
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            what = f"{doc.get('kind')}/{(meta or {}).get('name')}" if isinstance(doc, dict) else "?"
            out += [Problem(str(path), number, what, p, m) for p, m in check_document(doc, crds)]
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m exchange.dev.k8s_check FILE...``: exit 1 and one line per problem, or 0."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    try:
        problems = check_files([Path(a) for a in args])
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem)
    docs = sum(len(list(documents(Path(a)))) for a in args)
    print(
        json.dumps({"files": len(args), "documents": docs, "problems": len(problems)}),
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
