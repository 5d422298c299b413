"""The web console (管理控制台): the sharing workflow for people, in Chinese with English beside it.

Applicants, approvers, auditors and catalog administrators log in as members
of a department (:mod:`.accounts`, :mod:`.sessions`) and act through the same
Python API the command line uses (:class:`exchange.clients.department.Department`,
held per department by :mod:`.desks`, signing with the department's key that
only the server holds). Nothing here decides who may have what: a refusal is
the permission manager's, shown with its reason, and every command is audited
with the person who gave it. Pages are server-rendered Jinja2 templates with
htmx for the few live parts (the row filter checked as it is typed, the mask
preview); routes live in :mod:`.routes`, one module per page group.

It may import the HTTP stack, the clients, the audit reader and the rules;
nothing imports it but the command line.
"""
