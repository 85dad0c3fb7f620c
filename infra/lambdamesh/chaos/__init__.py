"""``lambdamesh chaos``: orders placed while faults are switched on, then every invariant checked.

One module per step of the run: :mod:`.plan` (what to switch on and how many orders),
:mod:`.switches` (faults set and cleared through the functions' configuration),
:mod:`.shoppers` (users sign up, orders placed over HTTP, retried as a client would),
:mod:`.poison` (events no consumer can process), :mod:`.observation` (what the run left:
tables, the payments ledger, mail, queues and dead letters), :mod:`.invariants` (the checks,
pure functions of an observation), :mod:`.runner` (the run, start to finish) and
:mod:`.command` (the subcommand).
"""
