"""The bus's HTTP services share this stack: FastAPI on uvicorn (ASGI).

It owns the app factory (:mod:`.app`), the one way a caller proves which
principal it is (:mod:`.auth`: HTTP basic, checked against the same users as
the broker; :mod:`.signed`: requests signed with a department's registered key,
replay-protected), the one error format (:mod:`.errors`: Confluent's
``{"error_code", "message"}``), request metrics for Prometheus
(:mod:`.metrics`), serving with uvicorn on httptools and uvloop (:mod:`.server`)
and routes answered ahead of FastAPI's routing and parameter solving where it counts
(:mod:`.direct`). Each service (the Schema Registry–compatible API in
:mod:`exchange.registry`, later the query gateway and the web console) is a
small module of routes on top. It may import
the bus and control layers; nothing below it imports it.
"""
