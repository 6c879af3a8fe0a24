"""SMS alerts behind a provider interface, with Alibaba Cloud SMS (Dysmsapi `SendSms`) as the one provider.

Why the signed HTTP API and not Alibaba's SDK: sending one templated SMS is one HTTPS request with a
documented HMAC-SHA1 signature (~30 lines below), while the SDK brings its own dependency tree (Tea
runtime, its own HTTP stack, credential providers) for that single call — and its HTTP stack would
bypass ours. Going through `gridrider.push.network.vetted_client` keeps the SSRF-safe transport every
other outbound call uses (resolve once, refuse non-public addresses, connect to the vetted address,
no redirects) and the single `PushNetwork` seam through which tests reach their local stand-in.

The signature is Alibaba Cloud's RPC signature V1 ("Signature mechanism" of the RPC-style API, and the
SMS "HTTP protocol and signature" page whose worked SendSms example this module reproduces):

    CanonicalizedQueryString = "&".join(percentEncode(k) + "=" + percentEncode(v) for k, v sorted by k)
    StringToSign = HTTPMethod + "&" + percentEncode("/") + "&" + percentEncode(CanonicalizedQueryString)
    Signature    = Base64(HMAC-SHA1(key=AccessKeySecret + "&", UTF-8(StringToSign)))

percentEncode is RFC 3986 over UTF-8: A-Z a-z 0-9 - _ . ~ stay, everything else is %XY (space is %20,
`*` is %2A). We send POST with the parameters as an application/x-www-form-urlencoded body, so phone
numbers never sit in a URL (proxy and access logs keep URLs, not bodies).

Phone numbers and the AccessKey secret never appear in logs, in exception messages or in a result's
message (the service echoes its string-to-sign, which holds the phone number, on a signature error).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Protocol
from urllib.parse import quote

import httpcore
import httpx
import msgspec

from gridrider.clock import Clock, SystemClock
from gridrider.config import SMS_TEMPLATE_KINDS, Settings
from gridrider.domain.members import mask_phone
from gridrider.logging import get_logger
from gridrider.push.network import PUBLIC_INTERNET, AddressRefused, PushNetwork, vetted_client

log = get_logger(__name__)

DYSMSAPI_HOST = "dysmsapi.aliyuncs.com"
API_VERSION = "2017-05-25"
HTTP_METHOD = "POST"
DEFAULT_TIMEOUT_S = 10.0

# Codes after which the same request may succeed later: flow control and the service's own faults.
RETRYABLE_CODES = frozenset({
    "isv.BUSINESS_LIMIT_CONTROL",  # per-number / per-template flow control (minute, hour, day)
    "isv.DAY_LIMIT_CONTROL",
    "Throttling",
    "Throttling.User",
    "Throttling.Api",
    "Throttling.Resource",
    "ServiceUnavailable",
    "InternalError",
    "isp.SYSTEM_ERROR",
    "isp.GATEWAY_ERROR",
})

_HOST_RE = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_DIGIT_RUN_RE = re.compile(r"\+?\d{7,}")
# SignatureDoesNotMatch echoes "server string to sign is:POST&%2F&…PhoneNumbers%3D138…".
_STRING_TO_SIGN_RE = re.compile(r"\s*(server\s+)?string[ -]to[ -]sign.*", re.IGNORECASE | re.DOTALL)
_MESSAGE_LIMIT = 300


def _retryable_code(code: str) -> bool:
    return code in RETRYABLE_CODES or code.startswith("Throttling.")


class SmsResult(msgspec.Struct, frozen=True):
    ok: bool
    # The provider's code ("OK", "isv.BUSINESS_LIMIT_CONTROL", …) or ours for transport faults
    # ("Timeout", "NetworkError", "AddressRefused", "HTTP502", "BadResponse").
    code: str
    message: str
    retryable: bool
    biz_id: str | None = None


class SmsProvider(Protocol):
    async def send(self, *, phone: str, kind: str, params: dict[str, str]) -> SmsResult:
        """Send the approved template for `kind` (one of SMS_TEMPLATE_KINDS) with `params` to `phone`."""
        ...

    async def aclose(self) -> None: ...


# -- the signature (pure functions) ------------------------------------------------------------------


def percent_encode(text: str) -> str:
    """RFC 3986 percent-encoding of UTF-8 as Alibaba Cloud's RPC signature wants it (space %20, `*` %2A, `~` kept)."""
    return quote(text, safe="-_.~")


def canonicalized_query(params: Mapping[str, str]) -> str:
    """Every parameter except Signature, sorted by name, each name and value percent-encoded, joined k=v&…"""
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())
                    if k != "Signature")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method}&{percent_encode('/')}&{percent_encode(canonicalized_query(params))}"


def rpc_signature(params: Mapping[str, str], access_key_secret: str, *, method: str = HTTP_METHOD) -> str:
    """Base64(HMAC-SHA1(secret + "&", StringToSign)) — Alibaba Cloud RPC signature version 1.0."""
    digest = hmac.new(f"{access_key_secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")


def format_timestamp(moment: dt.datetime) -> str:
    """ISO 8601 in UTC to the second: YYYY-MM-DDThh:mm:ssZ."""
    if moment.tzinfo is None:
        raise ValueError("the SMS timestamp needs a timezone-aware time")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- Alibaba Cloud SMS -------------------------------------------------------------------------------


class AliyunSms:
    """Alibaba Cloud SMS `SendSms` over the signed RPC-style HTTPS API, through the vetted transport."""

    def __init__(self, *, access_key_id: str, access_key_secret: str, sign_name: str,
                 templates: Mapping[str, str] | Iterable[tuple[str, str]],
                 network: PushNetwork = PUBLIC_INTERNET, endpoint: str = DYSMSAPI_HOST,
                 timeout_s: float = DEFAULT_TIMEOUT_S, wall_clock: Clock | None = None) -> None:
        templates = dict(templates)
        unknown = sorted(set(templates) - set(SMS_TEMPLATE_KINDS))
        missing = [kind for kind in SMS_TEMPLATE_KINDS if not templates.get(kind)]
        if unknown or missing:
            raise ValueError(f"SMS templates: unknown kinds {unknown}, missing kinds {missing} "
                             f"(expected exactly {', '.join(SMS_TEMPLATE_KINDS)})")
        if not access_key_id or not access_key_secret or not sign_name:
            raise ValueError("Alibaba Cloud SMS needs an AccessKey id, an AccessKey secret and a sign name")
        # Only a host name: which Alibaba Cloud endpoint to ask (e.g. a regional one), never where to connect —
        # that is the network's business, and the path and scheme are fixed.
        if not _HOST_RE.fullmatch(endpoint):
            raise ValueError(f"SMS endpoint must be a bare host name such as {DYSMSAPI_HOST}, got {endpoint!r}")
        self._access_key_id = access_key_id
        self._secret = access_key_secret
        self._sign_name = sign_name
        self._templates = templates
        self._url = f"https://{endpoint}/"
        self._timeout_s = timeout_s
        # The Timestamp is checked against Alibaba's clock (±15 min): a real clock, not a simulation's.
        self._clock: Clock = wall_clock or SystemClock()
        self._client = vetted_client(network, timeout_s=timeout_s)

    def signed_params(self, *, phone: str, kind: str, params: Mapping[str, str],
                      nonce: str | None = None, timestamp: str | None = None) -> dict[str, str]:
        """The request's parameters including Signature (public for inspection; `send` is the way to send)."""
        template = self._templates.get(kind)
        if template is None:
            raise ValueError(f"no SMS template for kind {kind!r}; kinds: {', '.join(SMS_TEMPLATE_KINDS)}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
            raise TypeError("SMS template parameters must be str → str")
        request = {
            "AccessKeyId": self._access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": phone,
            "RegionId": "cn-hangzhou",
            "SignName": self._sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "TemplateCode": template,
            "TemplateParam": json.dumps(dict(params), ensure_ascii=False, separators=(",", ":")),
            "Timestamp": timestamp or format_timestamp(self._clock.now()),
            "Version": API_VERSION,
        }
        request["Signature"] = rpc_signature(request, self._secret, method=HTTP_METHOD)
        return request

    async def send(self, *, phone: str, kind: str, params: dict[str, str]) -> SmsResult:
        request = self.signed_params(phone=phone, kind=kind, params=params)
        body = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in request.items())
        result = await self._post(body.encode("ascii"), phone)
        if result.ok:
            log.info("sms.sent", phone=mask_phone(phone), kind=kind, biz_id=result.biz_id)
        else:
            log.warning("sms.failed", phone=mask_phone(phone), kind=kind, code=result.code,
                        retryable=result.retryable, message=result.message)
        return result

    async def _post(self, body: bytes, phone: str) -> SmsResult:
        try:
            # A hard deadline over connect + send + answer; httpx's timeout is per phase.
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.post(self._url, content=body, headers={
                    "content-type": "application/x-www-form-urlencoded; charset=utf-8",
                    "accept": "application/json",
                })
        except (TimeoutError, httpcore.TimeoutException, httpx.TimeoutException):
            return SmsResult(ok=False, code="Timeout", message=f"no answer within {self._timeout_s:g} s",
                             retryable=True)
        except AddressRefused as exc:
            return SmsResult(ok=False, code="AddressRefused", message=self._scrub(str(exc), phone), retryable=True)
        except (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            return SmsResult(ok=False, code="NetworkError",
                             message=self._scrub(f"{type(exc).__name__}: {exc}", phone), retryable=True)
        return self._result(response, phone)

    def _result(self, response: httpx.Response, phone: str) -> SmsResult:
        status = response.status_code
        server_fault = status >= 500 or status == 429
        try:
            reply = json.loads(response.content)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("Code"), str):
            return SmsResult(ok=False, code=f"HTTP{status}" if status != 200 else "BadResponse",
                             message=f"HTTP {status} without a JSON Code", retryable=server_fault)
        code: str = reply["Code"]
        message = self._scrub(str(reply.get("Message", "")), phone)
        biz_id = reply.get("BizId") if isinstance(reply.get("BizId"), str) else None
        if status == 200 and code == "OK":
            return SmsResult(ok=True, code=code, message=message, retryable=False, biz_id=biz_id)
        return SmsResult(ok=False, code=code, message=message, retryable=server_fault or _retryable_code(code),
                         biz_id=biz_id)

    def _scrub(self, message: str, phone: str) -> str:
        """A provider message fit for logs: no string-to-sign (it holds the phone), no number, no secret."""
        message = _STRING_TO_SIGN_RE.sub(" (the echoed string to sign is withheld)", message)
        for text in {phone, percent_encode(phone), percent_encode(percent_encode(phone))} - {""}:
            message = message.replace(text, mask_phone(phone) or "****")
        message = _DIGIT_RUN_RE.sub(lambda m: mask_phone(m.group()) or "****", message)
        if self._secret:
            message = message.replace(self._secret, "****")
        return message[:_MESSAGE_LIMIT]

    async def aclose(self) -> None:
        await self._client.aclose()


def sms_provider(settings: Settings, network: PushNetwork | None = None) -> SmsProvider | None:
    """The configured provider, or None when SMS is off (GRIDRIDER_SMS_PROVIDER=none)."""
    match settings.sms_provider:
        case "none":
            return None
        case "aliyun":
            return AliyunSms(
                access_key_id=settings.aliyun_access_key_id,
                access_key_secret=settings.aliyun_access_key_secret,
                sign_name=settings.aliyun_sms_sign_name,
                templates=settings.aliyun_sms_templates,
                network=network if network is not None else PUBLIC_INTERNET,
            )
    raise ValueError(f"unknown SMS provider {settings.sms_provider!r}")
