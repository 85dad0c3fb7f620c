"""``lambdamesh dlq``: look into dead-letter queues and send their messages back.

- :mod:`~lambdamesh.dlq.queues` finds the topology's dead-letter queues, their depth and the
  queue each one serves;
- :mod:`~lambdamesh.dlq.letters` reads messages without consuming them and joins each to the
  reason its consumer recorded in the ``EventFailuresTable``;
- :mod:`~lambdamesh.dlq.redrive` moves messages back to their source queue;
- :mod:`~lambdamesh.dlq.formatting` renders all of it for people and scripts;
- :mod:`~lambdamesh.dlq.command` is the subcommand.
"""
