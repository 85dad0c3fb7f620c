"""Which topic a function publishes to and which service it calls, from its environment.

A function learns where its topic, the APIs and the functions it calls are from environment
variables that deploy fills from other stacks' outputs: ``USERS_TOPIC_ARN`` (a topic's ARN),
``USERS_API_URL`` (an API's stage URL), ``CATALOG_RPC_FUNCTION`` (a function's name). Rather
than trust those names, each value is looked up among the things the stacks hold: a topic's
ARN means the function publishes there, another service's function its name or ARN means it
calls it by RPC (Lambda ``Invoke``), a URL holding another service's REST API id means it calls
that API over HTTP. A value naming something of the function's own service is no call.

>>> index = ReferenceIndex()
>>> index.add_value("arn:aws:sns:us-east-1:123:lambdamesh-users", "topic:users")
>>> index.add_api_id("a1b2c3", "users.RestAPI")
>>> index.find("http://127.0.0.1:4566/_aws/execute-api/a1b2c3/api")
'users.RestAPI'
>>> index.find("https://a1b2c3.execute-api.us-east-1.amazonaws.com/api")
'users.RestAPI'
>>> index.find("arn:aws:sns:us-east-1:123:lambdamesh-users")
'topic:users'
>>> index.find("users-table") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from lambdamesh.topology.model import EdgeKind, NodeKind, TopologyBuilder

_TOKEN_SEPARATORS = re.compile(r"[/.:]")

_CALLS: dict[NodeKind, tuple[EdgeKind, str]] = {
    NodeKind.TOPIC: (EdgeKind.PUBLISHES, ""),
    NodeKind.FUNCTION: (EdgeKind.RPC, "RPC (Invoke)"),
    NodeKind.REST_API: (EdgeKind.HTTP, "HTTP"),
}
"""What a function does with what an environment value names, and the edge's words."""


@dataclass
class ReferenceIndex:
    """Values that name a node: exact strings (ARNs, names), and REST API ids inside URLs.

    Attributes
    ----------
    exact
        Value → node id.
    api_ids
        REST API id → node id, found as one ``/``, ``.`` or ``:``-separated part of a URL.
    """

    exact: dict[str, str] = field(default_factory=dict)
    api_ids: dict[str, str] = field(default_factory=dict)

    def add_value(self, value: str, node_id: str) -> None:
        """``value`` (an ARN, a name) names ``node_id``."""
        if value:
            self.exact[value] = node_id

    def add_api_id(self, api_id: str, node_id: str) -> None:
        """A URL holding ``api_id`` names the REST API ``node_id``."""
        if api_id:
            self.api_ids[api_id] = node_id

    def find(self, value: str) -> str | None:
        """The node ``value`` names, or ``None``."""
        if value in self.exact:
            return self.exact[value]
        for part in _TOKEN_SEPARATORS.split(value):
            if part in self.api_ids:
                return self.api_ids[part]
        return None


def connect_environment(
    builder: TopologyBuilder,
    function: str,
    variables: Mapping[str, str],
    index: ReferenceIndex,
) -> None:
    """Add the edges ``function``'s environment tells of: publishes, HTTP and RPC calls.

    Parameters
    ----------
    builder
        Holds ``function`` and every node ``index`` names.
    function
        The function's node id.
    variables
        Its environment variables (name → value).
    index
        What values name.
    """
    own_service = builder.service_of(function)
    for _, value in sorted(variables.items()):
        target = index.find(value)
        if target is None or target == function:
            continue
        kind = builder.kind_of(target)
        call = _CALLS.get(kind)
        if call is None or (
            kind is not NodeKind.TOPIC and builder.service_of(target) == own_service
        ):
            continue
        builder.connect(function, target, *call)
