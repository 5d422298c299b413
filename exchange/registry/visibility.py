"""Which subjects a principal may see.

* A department sees the views it receives (``gov.dlv.<itself>.*``), the
  sources it provides, and the sources of the resources it may discover:
  every resource it could subscribe or apply to, i.e. all but those wholly
  not shared (不予共享) by another department. Another department's view is
  never disclosed: its fields and masks tell what that department was granted.
  Such a subject answers as if it did not exist (40401).
* ``auditor``, ``catalog-admin`` and ``gov-router`` see everything.
* The control records' subjects are seen by every principal: every
  department reads the catalog and grant topics and writes its own audit entries.
"""

from __future__ import annotations

from exchange.catalog.model import Catalog, ShareType
from exchange.http.auth import Principal
from exchange.registry.subjects import Subject


def visible(principal: Principal, subject: Subject, catalog: Catalog | None) -> bool:
    if principal.sees_all or subject.kind == "control":
        return True
    if subject.kind == "view":
        return subject.owner == principal.name
    # a source
    if subject.owner == principal.name:
        return True
    if catalog is None or principal.name not in catalog.departments:
        return False
    res = catalog.resources.get(subject.resource or "")
    return res is not None and res.share.type is not ShareType.NOT_SHARED
