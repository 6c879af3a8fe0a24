"""Which subscriptions the sender may ever use: every rejected endpoint form, with its code."""

from __future__ import annotations

import base64
import ipaddress
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gridrider.config import DEFAULT_PUSH_HOSTS, SettingsError, load_settings
from gridrider.errors import PushSubscriptionRejected
from gridrider.push.endpoints import check_endpoint, check_keys
from gridrider.push.network import is_public_address


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def browser_keys() -> tuple[str, str]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64(point), b64(os.urandom(16))


@pytest.mark.parametrize("endpoint", [
    "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91bH",
    "https://fcm.googleapis.com:443/wp/abc",
    "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk",
    "https://web.push.apple.com/QGx1c2VyX3Rva2Vu",
    "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB",
    "HTTPS://FCM.GOOGLEAPIS.COM/fcm/send/x",
])
def test_real_push_services_are_accepted(endpoint: str) -> None:
    assert check_endpoint(endpoint, DEFAULT_PUSH_HOSTS).endswith(("googleapis.com", "mozilla.com", "apple.com",
                                                                   "windows.com"))


@pytest.mark.parametrize(("endpoint", "code"), [
    ("http://fcm.googleapis.com/fcm/send/x", "push_endpoint_not_https"),
    ("ftp://fcm.googleapis.com/x", "push_endpoint_not_https"),
    ("fcm.googleapis.com/fcm/send/x", "push_endpoint_malformed"),
    ("https://user:pw@fcm.googleapis.com/fcm/send/x", "push_endpoint_userinfo"),
    ("https://fcm.googleapis.com@127.0.0.1/fcm/send/x", "push_endpoint_userinfo"),
    ("https://fcm.googleapis.com:8443/fcm/send/x", "push_endpoint_port"),
    ("https://fcm.googleapis.com:80/fcm/send/x", "push_endpoint_port"),
    ("https://127.0.0.1/fcm/send/x", "push_endpoint_ip_literal"),
    ("https://10.0.0.8/x", "push_endpoint_ip_literal"),
    ("https://169.254.169.254/latest/meta-data", "push_endpoint_ip_literal"),
    ("https://[::1]/x", "push_endpoint_ip_literal"),
    ("https://[::ffff:127.0.0.1]/x", "push_endpoint_ip_literal"),
    ("https://[fe80::1%25eth0]/x", "push_endpoint_ip_literal"),
    ("https://2130706433/x", "push_endpoint_ip_literal"),  # decimal 127.0.0.1
    ("https://0x7f000001/x", "push_endpoint_ip_literal"),  # hex
    ("https://0x7f.1/x", "push_endpoint_ip_literal"),
    ("https://0177.0.0.1/x", "push_endpoint_ip_literal"),  # octal
    ("https://127.1/x", "push_endpoint_ip_literal"),
    ("https://fcm.googleapis.com.evil.example/fcm/send/x", "push_endpoint_host_not_allowed"),
    ("https://evil.example/https://fcm.googleapis.com/fcm/send/x", "push_endpoint_host_not_allowed"),
    ("https://evil.example/?u=fcm.googleapis.com", "push_endpoint_host_not_allowed"),
    ("https://evilpush.apple.com/x", "push_endpoint_host_not_allowed"),
    ("https://googleapis.com/x", "push_endpoint_host_not_allowed"),
    ("https://localhost/x", "push_endpoint_malformed"),
    ("https://fcm.googleapis.com./fcm/send/x", "push_endpoint_malformed"),  # trailing dot
    ("https://fcm%2egoogleapis.com/x", "push_endpoint_malformed"),
    ("https://fcm.googleapis.com\\@evil.example/x", "push_endpoint_malformed"),
    ("https://fcm.googleapis.com /x", "push_endpoint_malformed"),
    ("https://fcm.googleapis.com/x\r\nHost: evil", "push_endpoint_malformed"),
    ("https://fcm.googleapis.com", "push_endpoint_malformed"),  # no path
    ("https://fcm.googleapis.com/x#frag", "push_endpoint_malformed"),
    ("https://fcm.googleapis.com/" + "a" * 1100, "push_endpoint_too_long"),
])
def test_unsafe_or_unknown_endpoints_are_refused_with_their_code(endpoint: str, code: str) -> None:
    with pytest.raises(PushSubscriptionRejected) as caught:
        check_endpoint(endpoint, DEFAULT_PUSH_HOSTS)
    assert caught.value.code == code
    assert caught.value.status == 422


def test_keys_must_be_a_p256_point_and_a_16_byte_secret() -> None:
    p256dh, auth = browser_keys()
    point, secret = check_keys(p256dh, auth)
    assert len(point) == 65 and len(secret) == 16
    not_on_curve = b64(b"\x04" + b"\x01" * 64)
    compressed = b64(b"\x02" + b"\x01" * 32)
    for bad in (not_on_curve, compressed, b64(b"\x04" + b"\x00" * 64), "!!", "", p256dh + "A"):
        with pytest.raises(PushSubscriptionRejected) as caught:
            check_keys(bad, auth)
        assert caught.value.code == "push_key_invalid", bad
    for bad in (b64(os.urandom(15)), b64(os.urandom(17)), "", "***"):
        with pytest.raises(PushSubscriptionRejected) as caught:
            check_keys(p256dh, bad)
        assert caught.value.code == "push_auth_invalid", bad


@pytest.mark.parametrize(("address", "public"), [
    ("142.250.72.10", True), ("2a00:1450:4001:80b::200a", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
    ("::ffff:142.250.72.10", True), ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
])
def test_only_globally_routable_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize("hosts", ["127.0.0.1", "localhost", "fcm.googleapis.com,10.0.0.1", "[::1]", "0x7f.1",
                                   "*.com.", "push service", ""])
def test_push_hosts_setting_refuses_addresses_and_local_names(hosts: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"GRIDRIDER_PUSH_HOSTS": hosts or ","})
    assert "GRIDRIDER_PUSH_HOSTS" in str(caught.value)


def test_push_hosts_setting_takes_names_and_wildcards() -> None:
    settings = load_settings({"GRIDRIDER_PUSH_HOSTS": "fcm.googleapis.com, *.Push.Apple.com"})
    assert settings.push_hosts == ("fcm.googleapis.com", "*.push.apple.com")
