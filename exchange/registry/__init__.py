"""The Schema Registry–compatible API: any Kafka client decodes the bus's records.

Read-only by design: schemas change only through a signed catalog load. The
service follows ``gov.ctl.schemas``, ``gov.ctl.catalog`` and ``gov.ctl.grants``
(:mod:`exchange.control.state`) and serves, under Confluent's REST API and the
TopicNameStrategy, the subjects ``gov.src.<provider>.<resource>-value`` (the
catalog's versions of a resource's schema), ``gov.dlv.<consumer>.<resource>-value``
(each consumer's view, version by version) and the control records' subjects.
:mod:`.subjects` derives the subjects, :mod:`.visibility` decides who sees which,
:mod:`.api` is the routes, :mod:`.service` ties them to the control follower.
"""
