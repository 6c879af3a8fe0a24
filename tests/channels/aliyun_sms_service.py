"""A local stand-in for Alibaba Cloud SMS (Dysmsapi, API version 2017-05-25), checking requests as the service does.

HTTPS on 127.0.0.1 with a certificate for dysmsapi.aliyuncs.com from a CA made at start; the product
reaches it only through the `PushNetwork` from `network()` (the host resolves to this server, its CA is
trusted), never through a setting.

What it checks, in the service's order: the common parameters are present; Action/Version/Format and
the signature method and version are the supported ones; the Timestamp is well formed and within 15
minutes of now; the AccessKeyId is known; the Signature matches one recomputed here from the received
parameters with that key's secret (RPC signature V1, written out independently of the product's code);
the SignatureNonce has not been used; then SendSms's own parameters. Failures answer with the service's
error shape: HTTP 400/404 and `{"RequestId", "HostId", "Code", "Message", "Recommend"}`, SignatureDoesNotMatch
echoing the server's string-to-sign as the real one does. Business refusals (isv.*) answer HTTP 200 with
their Code, as the real service does.

Per phone number it can be told to answer: "ok", "throttled" (isv.BUSINESS_LIMIT_CONTROL), "illegal"
(isv.MOBILE_NUMBER_ILLEGAL), "error500" (HTTP 500 InternalError) or "hang" (read the request, never answer).
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import ipaddress
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import h11

from gridrider.push.network import PushNetwork
from tests.tls_stand_in import TlsStandIn

HOST_NAME = "dysmsapi.aliyuncs.com"
TEST_ACCESS_KEY_ID = "LTAI5tTestOnlyKeyId"
TEST_ACCESS_KEY_SECRET = "test-only-secret/with+odd*chars~"
BEHAVIOURS = frozenset({"ok", "throttled", "illegal", "error500", "hang"})
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
COMMON_PARAMS = ("AccessKeyId", "Action", "Version", "Signature", "SignatureMethod", "SignatureNonce",
                 "SignatureVersion", "Timestamp")
MOBILE_RE = re.compile(r"^(\+86|0086|86)?1\d{10}$")
READ_LIMIT = 256 * 1024
API_NOT_FOUND = "Specified api is not found, please check your url and method."


@dataclass
class AcceptedSms:
    phone: str
    template_code: str
    params: dict[str, Any]
    sign_name: str
    biz_id: str
    method: str
    arrived_at: float = field(default_factory=time.monotonic)


@dataclass
class RefusedSms:
    status: int
    code: str
    message: str


@dataclass
class RawRequest:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _pop_percent_encode(text: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XY of its UTF-8 bytes (so space is %20).
    return quote(text.encode("utf-8"), safe="-_.~")


def server_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(f"{_pop_percent_encode(k)}={_pop_percent_encode(v)}" for k, v in pairs)
    return "&".join([method, _pop_percent_encode("/"), _pop_percent_encode(canonical)])


def server_signature(method: str, params: Mapping[str, str], secret: str) -> str:
    mac = hmac.new((secret + "&").encode("utf-8"), server_string_to_sign(method, params).encode("utf-8"), "sha1")
    return base64.b64encode(mac.digest()).decode("ascii")


class AliyunSmsService(TlsStandIn):
    """Dysmsapi SendSms on 127.0.0.1 over TLS, verifying signatures, timestamps and nonces like the service."""

    read_limit = READ_LIMIT
    close_politely = False

    def __init__(self, *, access_keys: Mapping[str, str] | None = None, sign_name: str | None = None,
                 template_codes: frozenset[str] | None = None, host_name: str = HOST_NAME,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(host_name)
        self.access_keys = dict(access_keys or {TEST_ACCESS_KEY_ID: TEST_ACCESS_KEY_SECRET})
        # None → any approved-looking sign name / template code is accepted.
        self.sign_name = sign_name
        self.template_codes = template_codes
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self.raw: list[RawRequest] = []
        self.accepted: list[AcceptedSms] = []
        self.refused: list[RefusedSms] = []
        self._nonces: set[str] = set()
        self._behaviours: dict[str, str] = {}

    def network(self, **overrides: Any) -> PushNetwork:
        """The test's Internet: the SMS host resolves to this server, loopback is allowed, its CA trusted."""

        async def resolve(host: str, port: int) -> list[tuple[str, int]]:
            if host == self.host_name and port == 443:
                return [("127.0.0.1", self.port)]
            raise OSError(f"{host} is not known in this test")

        options = {"resolve": resolve, "address_allowed": lambda a: a == ipaddress.ip_address("127.0.0.1"),
                   "ssl_context": self.client_ssl_context()}
        return PushNetwork(**{**options, **overrides})

    def set_behaviour(self, phone: str, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; known: {sorted(BEHAVIOURS)}")
        self._behaviours[phone] = behaviour

    def messages_for(self, phone: str) -> list[AcceptedSms]:
        return [m for m in self.accepted if m.phone == phone]

    # -- HTTP ---------------------------------------------------------------------------------------

    async def handle(self, request: h11.Request, body: bytes) -> tuple[int, list[tuple[str, str]], bytes] | None:
        raw = RawRequest(request.method.decode(), request.target.decode("latin-1"), list(request.headers), body)
        self.raw.append(raw)
        answer = self._handle(raw)
        if answer is None:  # "hang": hold the request until the client gives up
            return None
        status, reply = answer
        payload = json.dumps(reply, ensure_ascii=False).encode()
        return status, [("content-type", "application/json;charset=utf-8")], payload

    def _handle(self, raw: RawRequest) -> tuple[int, dict[str, Any]] | None:
        request_id = str(uuid.uuid4()).upper()
        try:
            return self._send_sms(raw, request_id)
        except _Refusal as refusal:
            self.refused.append(RefusedSms(refusal.status, refusal.code, refusal.message))
            return refusal.status, {"RequestId": request_id, "HostId": self.host_name, "Code": refusal.code,
                                    "Message": refusal.message,
                                    "Recommend": f"https://api.aliyun.com/troubleshoot?q={refusal.code}"}

    def _params(self, raw: RawRequest) -> dict[str, str]:
        path, _, query = raw.target.partition("?")
        if path != "/":
            raise _Refusal(404, "InvalidAction.NotFound", API_NOT_FOUND)
        if raw.method not in ("GET", "POST"):
            raise _Refusal(405, "UnsupportedHTTPMethod", f"HTTP method {raw.method} is not supported.")
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, encoding="utf-8", errors="strict")
        if raw.method == "POST" and raw.body:
            content_type = dict((k.lower(), v) for k, v in raw.headers).get(b"content-type", b"").decode("latin-1")
            if not content_type.lower().startswith("application/x-www-form-urlencoded"):
                raise _Refusal(400, "InvalidParameter", f"Unsupported content type {content_type!r}.")
            pairs += parse_qsl(raw.body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                raise _Refusal(400, "InvalidParameter", f"The parameter {name} is given more than once.")
            params[name] = value
        return params

    def _send_sms(self, raw: RawRequest, request_id: str) -> tuple[int, dict[str, Any]] | None:
        try:
            params = self._params(raw)
        except UnicodeDecodeError as exc:
            raise _Refusal(400, "InvalidParameter", "The request is not UTF-8.") from exc
        for name in COMMON_PARAMS:
            if not params.get(name):
                raise _Refusal(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["Action"] != "SendSms":
            raise _Refusal(404, "InvalidAction.NotFound", API_NOT_FOUND)
        if params["Version"] != "2017-05-25":
            raise _Refusal(400, "InvalidVersion", "Specified parameter Version is not valid.")
        if params.get("Format", "XML") != "JSON":
            raise _Refusal(400, "InvalidParameter", "This stand-in answers Format=JSON only.")
        if params["SignatureMethod"] != "HMAC-SHA1":
            raise _Refusal(400, "InvalidSignatureMethod", "Specified signature method is not supported.")
        if params["SignatureVersion"] != "1.0":
            raise _Refusal(400, "UnsupportedSignatureVersion", "Specified signature version is not supported.")
        try:
            stamp = dt.datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except ValueError as exc:
            raise _Refusal(400, "InvalidTimeStamp.Format",
                           "Specified time stamp or date value is not well formatted.") from exc
        if abs(self.now() - stamp) > MAX_CLOCK_SKEW:
            raise _Refusal(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        secret = self.access_keys.get(params["AccessKeyId"])
        if secret is None:
            raise _Refusal(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        expected = server_signature(raw.method, params, secret)
        if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
            raise _Refusal(400, "SignatureDoesNotMatch",
                           "Specified signature is not matched with our calculation. server string to sign is:"
                           + server_string_to_sign(raw.method, params))
        if params["SignatureNonce"] in self._nonces:
            raise _Refusal(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces.add(params["SignatureNonce"])
        return self._business(params, raw.method, request_id)

    def _business(self, params: dict[str, str], method: str, request_id: str) -> tuple[int, dict[str, Any]] | None:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                raise _Refusal(400, f"Missing{name}", f"{name} is mandatory for this action.")

        def refuse(code: str, message: str) -> tuple[int, dict[str, Any]]:
            self.refused.append(RefusedSms(200, code, message))
            return 200, {"RequestId": request_id, "Code": code, "Message": message}

        if self.sign_name is not None and params["SignName"] != self.sign_name:
            return refuse("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        if not re.fullmatch(r"SMS_\d+", params["TemplateCode"]) or (
                self.template_codes is not None and params["TemplateCode"] not in self.template_codes):
            return refuse("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            template_params = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            template_params = None
        if not isinstance(template_params, dict) or not all(isinstance(v, str) for v in template_params.values()):
            return refuse("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        phones = params["PhoneNumbers"].split(",")
        behaviours = [self._behaviours.get(phone, "ok") for phone in phones]
        if "hang" in behaviours:
            return None
        if "error500" in behaviours:
            self.refused.append(RefusedSms(500, "InternalError", "internal error"))
            return 500, {"RequestId": request_id, "HostId": self.host_name, "Code": "InternalError",
                         "Message": "The request processing has failed due to some unknown error, exception or "
                                    "failure."}
        if "illegal" in behaviours or not all(MOBILE_RE.fullmatch(phone) for phone in phones):
            return refuse("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if "throttled" in behaviours:
            return refuse("isv.BUSINESS_LIMIT_CONTROL", "触发号码天级流控Permits:10")
        biz_id = f"{int(time.time() * 1000)}^{uuid.uuid4().int % 10**10}"
        for phone in phones:
            self.accepted.append(AcceptedSms(phone, params["TemplateCode"], template_params, params["SignName"],
                                             biz_id, method))
        return 200, {"RequestId": request_id, "Code": "OK", "Message": "OK", "BizId": biz_id}
