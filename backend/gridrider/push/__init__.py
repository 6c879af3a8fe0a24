"""Web Push: subscriptions' safety (endpoints.py), VAPID keys (vapid.py), the vetted network (network.py)
and the sender (sender.py); `PushRuntime` holds what one process needs of them."""

from __future__ import annotations

import dataclasses

from gridrider.config import Settings, SettingsError
from gridrider.push.network import PUBLIC_INTERNET, PushNetwork
from gridrider.push.sender import PushSender
from gridrider.push.vapid import VapidKeyError, VapidKeyring

# How many browsers one member may keep subscribed (phone, tablet, desk); older ones are dropped.
SUBSCRIPTIONS_PER_MEMBER = 10


@dataclasses.dataclass
class PushRuntime:
    settings: Settings
    keyring: VapidKeyring
    network: PushNetwork
    _sender: PushSender | None = None

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        return self.network.allowed_hosts(self.settings.push_hosts)

    @property
    def sender(self) -> PushSender:
        # Made on first use, inside the running event loop its connections belong to.
        if self._sender is None:
            self._sender = PushSender(self.keyring, self.network, timeout_s=self.settings.push_timeout_s,
                                      lanes_per_origin=self.settings.push_concurrency)
        return self._sender

    async def aclose(self) -> None:
        if self._sender is not None:
            await self._sender.aclose()
            self._sender = None


def build_push(settings: Settings, network: PushNetwork | None = None) -> PushRuntime:
    """The process's push runtime; `network` is only ever given by tests (see push/network.py)."""
    try:
        keyring = VapidKeyring.from_text(settings.vapid_private_key, settings.vapid_subject)
    except VapidKeyError as exc:
        raise SettingsError(f"GRIDRIDER_VAPID_PRIVATE_KEY: {exc}") from None
    return PushRuntime(settings=settings, keyring=keyring, network=network or PUBLIC_INTERNET)
