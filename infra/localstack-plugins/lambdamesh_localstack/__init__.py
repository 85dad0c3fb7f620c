"""LocalStack plugins of lambdamesh: Lambda and DynamoDB without Docker or Java, loopback only.

Entry points (``pyproject.toml``): the ``process`` Lambda runtime executor, the ``dynamodb:moto``
and ``dynamodbstreams:moto`` providers, the ``loopback`` gateway server, and the event source
mapping tuning hook. Modules that do not import LocalStack (``interpreters``,
``function_bootstrap``, ``listen_addresses``, the settings of ``esm_tuning``) are also used by the
launcher and the tests outside the emulator.
"""
