"""Messaging between services, one module per concern.

- :mod:`.envelope`: build an event's envelope, read one from a message body, validate its
  ``data`` against the contract registered for its type and version;
- :mod:`.publishing`: publish envelopes to an SNS topic (:class:`~.publishing.Publisher`), and
  the outbox (:class:`~.publishing.Outbox`): an event is committed with the state change that
  caused it and published after, again when a redelivery or replay finds it unpublished;
- :mod:`.consuming`: an SQS batch → one handler call per event → the partial batch response;
- :mod:`.bookkeeping`: what a consumer remembers: processed event ids (idempotency) and why a
  message failed; the two tables' layout, which the DLQ tooling reads too;
- :mod:`.retry_backoff`: how long a failed message stays hidden before its next try;
- :mod:`.store`: streams of events on DynamoDB (the event store): append after the version
  read, all or nothing, or :class:`~.store.ConcurrencyError`; read a stream from a version.
- :mod:`.change_capture`: change data capture: a DynamoDB stream's records handed over in
  order, an event store's appended events published from its stream; a record no retry can
  handle goes to a dead-letter queue with the reason.

The event contracts themselves (the envelope model and one model per event's ``data``) are in
:mod:`lambdamesh_toolkit.contracts.events`.
"""
