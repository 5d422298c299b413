"""The query gateway (接口调用): requests by key and verifications (核验), over HTTP.

A department asks for the latest record with a key, or whether a record
matches values it holds, and gets its own view only: the answer is built by
the same compiled views as the stream (:mod:`exchange.sharing.policy`,
:mod:`exchange.router.view`). The records come from a latest-state store
(:mod:`.store`, SQLite) that :mod:`.materializer` keeps from the source
topics; every request is audited (:mod:`.request_audit`) before it is
answered, within a grant's quotas (:mod:`.quota`). :mod:`.access` decides,
:mod:`.api` and :mod:`.openapi` render, :mod:`.service` holds the parts
together. It imports the HTTP stack, the rules and the router's view
compiler; nothing imports it but the command line.
"""
