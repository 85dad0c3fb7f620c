"""``lambdamesh trace``: one request's path through the services, rebuilt from their logs.

Every function logs a hop record at the end of each hop (:mod:`lambdamesh_toolkit.hops`); the
records of one correlation id, read back from CloudWatch Logs (:mod:`.logs`), with the dead
letters that carry it (:mod:`.dead_letters`), are the hops (:mod:`.records`) of a tree joined by
their span ids (:mod:`.tree`), drawn in the terminal, as Mermaid or as JSON (:mod:`.rendering`).
The reading is kept apart from the rebuilding, which needs no AWS.
"""
