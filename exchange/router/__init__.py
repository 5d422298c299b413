"""The router: source records to every entitled consumer, as its own view.

One module per concern:

- ``loop``: :class:`~exchange.router.loop.Router`, the consumer loop; starts, stops and wires the parts
- ``routing``: one source partition's records through every view in force (the per-record loop)
- ``view``: one consumer's view of one resource, compiled (filter, projection, masks)
- ``view_table``: every resource's compiled views and decoder, recompiled when policy changes
- ``outbox``: outgoing records gathered into one Kafka record batch per partition
- ``settle``: routed batches acknowledged, audited, committed, in batch order
- ``dead_letters``: records that cannot be routed, onto ``gov.dlq.<resource>``
- ``notices``: what the router notices on its own (expiries, overdue, refused events), audited once
- ``watchdog``: how long the broker keeps the router waiting, logged and counted
- ``book_writer``: grant book snapshots on ``gov.ctl.book`` for command sessions
- ``backfill``, ``backfill_scan``: a new, wider or narrowed view given the current state (全量)
- ``deletions``, ``retractions``: deletions, records leaving a view, grants ended, per consumer
- ``membership``: the keys each row-filtered view holds, per source partition
- ``membership_rebuild``: those keys read from the source when the router takes a partition
"""
