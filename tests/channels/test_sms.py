"""Alibaba Cloud SMS through the signed RPC API, against a local stand-in that verifies requests like the service."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging

import pytest

from gridrider.channels.sms import (
    DYSMSAPI_HOST,
    AliyunSms,
    SmsResult,
    percent_encode,
    rpc_signature,
    sms_provider,
    string_to_sign,
)
from gridrider.clock import ManualClock
from gridrider.config import Settings
from gridrider.push.network import PushNetwork, vetted_client
from tests.channels.aliyun_sms_service import TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET, AliyunSmsService

SIGN_NAME = "网格骑手"
TEMPLATES = (("life_safety", "SMS_100001"), ("escalation", "SMS_100002"))
PHONE = "13812345678"


@pytest.fixture
async def sms_service():
    codes = frozenset(code for _, code in TEMPLATES)
    async with AliyunSmsService(sign_name=SIGN_NAME, template_codes=codes) as service:
        yield service


def make_sms(service: AliyunSmsService | None, *, secret: str = TEST_ACCESS_KEY_SECRET, **overrides) -> AliyunSms:
    options = {"access_key_id": TEST_ACCESS_KEY_ID, "access_key_secret": secret, "sign_name": SIGN_NAME,
               "templates": TEMPLATES, "timeout_s": 5.0}
    if service is not None:
        options["network"] = service.network()
    return AliyunSms(**{**options, **overrides})


def aliyun_settings(**overrides) -> Settings:
    return Settings(sms_provider="aliyun", aliyun_access_key_id=TEST_ACCESS_KEY_ID,
                    aliyun_access_key_secret=TEST_ACCESS_KEY_SECRET, aliyun_sms_sign_name=SIGN_NAME,
                    aliyun_sms_templates=TEMPLATES, **overrides)


def assert_no_secrets(text: str, *, secret: str = TEST_ACCESS_KEY_SECRET) -> None:
    assert PHONE not in text
    assert secret not in text


# -- the signature, against the documented worked example ----------------------------------------------

# Alibaba Cloud SMS "HTTP protocol and signature" (help.aliyun.com/document_detail/56189): SendSms with
# AccessKeyId testId, AccessKeySecret testSecret, signed for GET.
DOC_PARAMS = {
    "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
    "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25",
}
DOC_SIGNATURE = "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_signature_reproduces_the_documented_sendsms_example():
    # Step 1, by hand: parameters sorted by name, names and values percent-encoded (UTF-8, space %20,
    # unreserved -_.~ kept), joined k=v&k=v.
    canonical = (
        "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001"
        "&RegionId=cn-hangzhou"
        "&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8"
        "&SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0"
        "&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D"
        "&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
    )
    # Step 2: METHOD & percentEncode("/") & percentEncode(canonical) — the canonical string encoded once more.
    encoded_again = canonical.replace("%", "%25").replace("=", "%3D").replace("&", "%26")
    documented_string_to_sign = "GET&%2F&" + encoded_again
    assert documented_string_to_sign.startswith("GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26")
    assert "SignName%3D%25E9%2598%25BF" in documented_string_to_sign
    # Step 3: Base64(HMAC-SHA1(secret + "&", string to sign)).
    by_hand = base64.b64encode(hmac.new(b"testSecret&", documented_string_to_sign.encode(), hashlib.sha1).digest())
    assert by_hand.decode() == DOC_SIGNATURE  # the hand-written steps match the document

    assert string_to_sign("GET", DOC_PARAMS) == documented_string_to_sign
    assert rpc_signature(DOC_PARAMS, "testSecret", method="GET") == DOC_SIGNATURE
    # A Signature already among the parameters is not signed.
    assert rpc_signature({**DOC_PARAMS, "Signature": "x"}, "testSecret", method="GET") == DOC_SIGNATURE
    # We send POST: the same canonical string under another method.
    post_by_hand = base64.b64encode(hmac.new(b"testSecret&", ("POST&%2F&" + encoded_again).encode(),
                                             hashlib.sha1).digest()).decode()
    assert rpc_signature(DOC_PARAMS, "testSecret") == post_by_hand != DOC_SIGNATURE


def test_percent_encoding_follows_rfc3986_as_alibaba_wants():
    assert percent_encode("a b") == "a%20b"
    assert percent_encode("*") == "%2A"
    assert percent_encode("~-_.") == "~-_."
    assert percent_encode("/=&+:") == "%2F%3D%26%2B%3A"
    assert percent_encode("派") == "%E6%B4%BE"


# -- sending through the stand-in ----------------------------------------------------------------------


async def test_sending_records_template_and_params_at_the_service(sms_service):
    sms = make_sms(sms_service)
    try:
        result = await sms.send(phone=PHONE, kind="life_safety",
                                params={"incident": "INC-42", "place": "人民路 & 中山路*口"})
        escalated = await sms.send(phone="13900001111", kind="escalation", params={"level": "2"})
    finally:
        await sms.aclose()
    assert result.ok and result.code == "OK" and not result.retryable and result.biz_id
    assert escalated.ok
    [first, second] = sms_service.accepted
    assert (first.phone, first.template_code, first.params, first.sign_name, first.method) == (
        PHONE, "SMS_100001", {"incident": "INC-42", "place": "人民路 & 中山路*口"}, SIGN_NAME, "POST")
    assert (second.phone, second.template_code, second.params) == ("13900001111", "SMS_100002", {"level": "2"})
    assert first.biz_id == result.biz_id
    # The phone number travels in the body, never in the URL.
    assert all(raw.target == "/" for raw in sms_service.raw)


async def test_wrong_secret_is_refused_as_signature_mismatch(sms_service, caplog):
    wrong = "not-the-secret"
    sms = make_sms(sms_service, secret=wrong)
    with caplog.at_level(logging.DEBUG):
        try:
            result = await sms.send(phone=PHONE, kind="life_safety", params={"incident": "INC-1"})
        finally:
            await sms.aclose()
    assert result == SmsResult(ok=False, code="SignatureDoesNotMatch", message=result.message, retryable=False,
                               biz_id=None)
    assert sms_service.accepted == []
    # The service echoes its string-to-sign (which holds the number); none of it comes back out.
    assert sms_service.refused[-1].message.count("13812345678") == 1
    assert_no_secrets(result.message, secret=wrong)
    assert "Specified signature is not matched" in result.message
    logged = caplog.text + repr([r.__dict__ for r in caplog.records])
    assert_no_secrets(logged, secret=wrong)
    assert "138****5678" in logged


async def test_throttling_is_retryable(sms_service):
    sms_service.set_behaviour(PHONE, "throttled")
    sms = make_sms(sms_service)
    try:
        result = await sms.send(phone=PHONE, kind="escalation", params={"level": "1"})
    finally:
        await sms.aclose()
    assert (result.ok, result.code, result.retryable) == (False, "isv.BUSINESS_LIMIT_CONTROL", True)
    assert sms_service.accepted == []


async def test_illegal_numbers_are_not_retryable(sms_service):
    sms_service.set_behaviour(PHONE, "illegal")
    sms = make_sms(sms_service)
    try:
        refused = await sms.send(phone=PHONE, kind="life_safety", params={"incident": "INC-1"})
        malformed = await sms.send(phone="12345", kind="life_safety", params={"incident": "INC-1"})
    finally:
        await sms.aclose()
    for result in (refused, malformed):
        assert (result.ok, result.code, result.retryable) == (False, "isv.MOBILE_NUMBER_ILLEGAL", False)


async def test_server_error_and_hang_are_retryable(sms_service):
    sms_service.set_behaviour(PHONE, "error500")
    sms_service.set_behaviour("13900000000", "hang")
    sms = make_sms(sms_service, timeout_s=0.5)
    try:
        failed = await sms.send(phone=PHONE, kind="life_safety", params={"incident": "INC-1"})
        hung = await sms.send(phone="13900000000", kind="life_safety", params={"incident": "INC-1"})
        sms_service.set_behaviour(PHONE, "ok")
        later = await sms.send(phone=PHONE, kind="life_safety", params={"incident": "INC-1"})
    finally:
        await sms.aclose()
    assert (failed.ok, failed.code, failed.retryable) == (False, "InternalError", True)
    assert (hung.ok, hung.code, hung.retryable) == (False, "Timeout", True)
    assert later.ok  # the client recovers after a hung connection


async def test_a_replayed_request_is_refused_for_its_nonce(sms_service):
    sms = make_sms(sms_service)
    try:
        assert (await sms.send(phone=PHONE, kind="life_safety", params={"incident": "INC-7"})).ok
    finally:
        await sms.aclose()
    original = sms_service.raw[-1]
    async with vetted_client(sms_service.network(), timeout_s=5) as client:
        replay = await client.post(f"https://{DYSMSAPI_HOST}/", content=original.body,
                                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert replay.status_code == 400
    assert replay.json()["Code"] == "SignatureNonceUsed"
    assert len(sms_service.accepted) == 1


async def test_a_skewed_clock_is_refused_as_expired_timestamp(sms_service):
    skewed = ManualClock(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
    sms = make_sms(sms_service, wall_clock=skewed)
    try:
        late = await sms.send(phone=PHONE, kind="life_safety", params={"incident": "INC-1"})
        skewed.advance(minutes=2)
        in_time = await sms.send(phone=PHONE, kind="life_safety", params={"incident": "INC-1"})
    finally:
        await sms.aclose()
    assert (late.ok, late.code, late.retryable) == (False, "InvalidTimeStamp.Expired", False)
    assert in_time.ok


async def test_production_network_never_reaches_the_stand_in(sms_service):
    # No injected network: the real host name does not lead to the stand-in (here it does not resolve).
    sms = sms_provider(aliyun_settings())
    assert isinstance(sms, AliyunSms)
    try:
        result = await sms.send(phone=PHONE, kind="life_safety", params={"incident": "INC-1"})
    finally:
        await sms.aclose()
    assert not result.ok and result.retryable
    # Even a resolver that answers with the stand-in's loopback address is refused by the production policy.
    pointed_inward = PushNetwork(resolve=sms_service.network().resolve, ssl_context=sms_service.client_ssl_context())
    sms = make_sms(None, network=pointed_inward)
    try:
        refused = await sms.send(phone=PHONE, kind="life_safety", params={"incident": "INC-1"})
    finally:
        await sms.aclose()
    assert (refused.ok, refused.code, refused.retryable) == (False, "AddressRefused", True)
    assert_no_secrets(refused.message)
    assert sms_service.requests == 0


def test_sms_provider_follows_the_setting():
    assert sms_provider(Settings(sms_provider="none")) is None
    assert isinstance(sms_provider(aliyun_settings()), AliyunSms)


def test_configuration_mistakes_fail_fast_without_echoing_the_secret():
    with pytest.raises(ValueError, match="bare host name"):
        make_sms(None, endpoint="https://dysmsapi.aliyuncs.com/")
    with pytest.raises(ValueError, match="missing kinds") as missing:
        make_sms(None, templates=(("life_safety", "SMS_1"),))
    assert TEST_ACCESS_KEY_SECRET not in str(missing.value)
    sms = make_sms(None)
    with pytest.raises(ValueError, match="no SMS template") as unknown:
        sms.signed_params(phone=PHONE, kind="chit_chat", params={})
    assert PHONE not in str(unknown.value)
