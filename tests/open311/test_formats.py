"""One body, JSON and XML: well-formed whatever the text holds, the spec's element names, null as empty."""

import datetime as dt
import xml.etree.ElementTree as ET

import msgspec
import pytest

from gridrider.open311.formats import error_body, format_of, render, w3_datetime
from tests.open311.conftest import parse_xml, xml_plain


def test_hostile_text_stays_well_formed_and_reads_back_the_same():
    text = 'a < b && c > "d" \'e\' <![CDATA[x]]> </description><x/> 井盖\x00\x08\x1b\ufffe end'
    body = [{"service_request_id": 7, "description": text, "media_url": None, "lat": 42.372}]
    root = parse_xml(render("xml", "service_requests", body))
    (request,) = root
    assert request.tag == "request"
    # Characters XML cannot carry at all become U+FFFD (in JSON too, so both formats say the same).
    expected = 'a < b && c > "d" \'e\' <![CDATA[x]]> </description><x/> 井盖\ufffd\ufffd\ufffd\ufffd end'
    assert request.findtext("description") == expected
    assert msgspec.json.decode(render("json", "service_requests", body))[0]["description"] == expected
    assert request.find("media_url").text is None and request.findtext("lat") == "42.372"


def test_lists_take_the_spec_element_names_and_booleans_are_words():
    body = {"service_code": "x", "attributes": [{"variable": True, "values": [{"key": "a", "name": "A"}]}]}
    root = ET.fromstring(render("xml", "service_definition", body))
    assert root.tag == "service_definition"
    assert root.find("attributes/attribute/variable").text == "true"
    assert root.find("attributes/attribute/values/value/key").text == "a"
    assert xml_plain(root) == {"service_code": "x", "attributes": [{"variable": "true",
                                                                     "values": [{"key": "a", "name": "A"}]}]}


def test_errors_follow_the_spec_example():
    xml = render("xml", "errors", error_body(403, ["Invalid api_key received -- can't proceed with create_request."]))
    root = parse_xml(xml)
    assert [(e.findtext("code"), e.findtext("description")) for e in root.iter("error")] == [
        ("403", "Invalid api_key received -- can't proceed with create_request.")]
    assert msgspec.json.decode(render("json", "errors", error_body(400, ["a", "b"]))) == [
        {"code": 400, "description": "a"}, {"code": 400, "description": "b"}]


def test_times_are_w3c_with_the_shanghai_offset():
    assert w3_datetime(dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)) == "2026-11-26T10:00:00+08:00"


@pytest.mark.parametrize(("path", "fmt"), [
    ("/open311/v2/services.json", "json"), ("/open311/v2/requests/12.xml", "xml"),
    ("/open311/v2/services.html", None), ("/open311/v2/services", None), ("/open311/v2/tokens/abc.JSON", None),
])
def test_the_format_is_the_path_extension(path, fmt):
    assert format_of(path) == fmt
