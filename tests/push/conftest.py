"""A local push service, and the one injected object through which the product may reach it."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from gridrider.app import create_app
from gridrider.push.network import PushNetwork
from tests.push.push_service import PushService


@pytest_asyncio.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    await service.start()
    yield service
    await service.stop()


def loopback_network(service: PushService, **overrides) -> PushNetwork:
    """The test's stand-in for the Internet: its push host resolves to the local service, loopback is allowed."""

    async def resolve(host: str, port: int) -> list[tuple[str, int]]:
        if host == service.host_name and port == 443:
            return [("127.0.0.1", service.port)]
        raise OSError(f"{host} is not known in this test")

    options = {"resolve": resolve, "address_allowed": lambda address: address == ipaddress.ip_address("127.0.0.1"),
               "ssl_context": service.client_ssl_context(), "extra_hosts": frozenset({service.host_name})}
    return PushNetwork(**{**options, **overrides})


@pytest.fixture
def push_network(push_service: PushService) -> PushNetwork:
    return loopback_network(push_service)


@pytest_asyncio.fixture
async def push_client(settings, clock, db, redis, push_network) -> AsyncIterator[AsyncTestClient]:
    """The API with the test's push host allowed (the `client` fixture has production's allow-list)."""
    async with AsyncTestClient(app=create_app(settings, clock=clock, push_network=push_network)) as client:
        yield client
