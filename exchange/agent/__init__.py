"""A department's agent: one warm session that answers its commands in milliseconds.

``exchange agent --as health`` keeps a department's session open (its signing
key loaded, its producer connected, its grant book read) and listens on a Unix
socket in the state directory. While it runs, ``exchange approve``, ``reject``
and ``revoke`` by that department hand their arguments to it instead of
starting a session of their own, so a revocation reaches ``gov.ctl.grants``
within the time it takes Python to start, not the time it takes to import
Kafka, connect and replay the control topics (issue 12: revoke acknowledged ≤
0.5 s at p95 on a 2-core machine, which a new process cannot do: a bare
aiokafka produce from a new process takes about as long).

Nothing changes in what is checked: the agent runs the same
:class:`exchange.clients.department.Department` methods, caught up with the
control topics before every command, audited the same way. The socket is only
for the user who started the agent (its directory is 0700 and each connection's
peer uid is checked), as the key file it holds is.

:mod:`exchange.agent.client` is the command line's side (standard library
only, so forwarding costs no imports); :mod:`exchange.agent.server` the agent's.
"""
