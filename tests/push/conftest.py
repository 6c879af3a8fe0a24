"""The one injected object through which the product may reach the local push service (its fixtures,
`push_service`, `push_network` and `push_client`, are in tests/conftest.py for every test to use)."""

from __future__ import annotations

import ipaddress

from gridrider.push.network import PushNetwork
from tests.push.push_service import PushService


def loopback_network(service: PushService, **overrides) -> PushNetwork:
    """The test's stand-in for the Internet: its push host resolves to the local service, loopback is allowed."""

    async def resolve(host: str, port: int) -> list[tuple[str, int]]:
        if host == service.host_name and port == 443:
            return [("127.0.0.1", service.port)]
        raise OSError(f"{host} is not known in this test")

    options = {"resolve": resolve, "address_allowed": lambda address: address == ipaddress.ip_address("127.0.0.1"),
               "ssl_context": service.client_ssl_context(), "extra_hosts": frozenset({service.host_name})}
    return PushNetwork(**{**options, **overrides})
