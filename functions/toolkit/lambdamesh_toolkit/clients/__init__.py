"""Typed clients of the services' synchronous interfaces, one module per service.

Each wraps a transport client of the toolkit (:mod:`lambdamesh_toolkit.rpc` or
:mod:`lambdamesh_toolkit.http_client`) in the calls its service offers, with that
service's contracts as arguments and results, so every caller reads the answers alike.
"""
