"""discovery, services and service definitions, against the GeoReport v2 field lists, in JSON and XML."""

import pytest

from gridrider.domain.categories import DEFAULT_CATEGORIES
from tests.open311.conftest import BASE, assert_error, both

SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
ATTRIBUTE_FIELDS = ["variable", "code", "datatype", "required", "datatype_description", "order", "description",
                    "values"]


async def test_discovery_names_this_endpoint_and_both_formats(client, db, settings):
    body, root = await both(client, "discovery")
    assert root.tag == "discovery"
    assert list(body) == ["changeset", "contact", "key_service", "endpoints"]
    assert body["contact"] == settings.open311_contact
    (endpoint,) = body["endpoints"]
    assert endpoint == {
        "specification": "http://wiki.open311.org/GeoReport_v2", "url": f"{settings.public_url}/open311/v2",
        "changeset": body["changeset"], "type": "production", "formats": ["text/xml", "application/json"],
    }
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == ["text/xml", "application/json"]


async def test_the_changeset_moves_when_a_category_is_edited(client, db):
    before, _ = await both(client, "discovery")
    await db.execute("""UPDATE categories SET name_en = 'rubbish',
                               updated_at = (SELECT max(updated_at) FROM categories) + interval '1 hour'
                        WHERE code = 'garbage_pileup'""")
    after, _ = await both(client, "discovery")
    assert after["changeset"] > before["changeset"]


async def test_one_service_per_enabled_category_with_the_spec_fields(client, db):
    await db.execute("UPDATE categories SET enabled = false WHERE code = 'other'")
    body, root = await both(client, "services")
    assert root.tag == "services" and {child.tag for child in root} == {"service"}
    assert all(list(service) == SERVICE_FIELDS for service in body)
    codes = [s["service_code"] for s in body]
    assert sorted(codes) == sorted(c.code for c in DEFAULT_CATEGORIES if c.code != "other")
    manhole = next(s for s in body if s["service_code"] == "missing_manhole_cover")
    assert manhole["service_name"] == "井盖缺失或破损"
    assert (manhole["metadata"], manhole["type"]) == (True, "batch")
    assert "missing or broken manhole cover" in manhole["keywords"] and "1 小时" in manhole["description"]
    assert manhole["group"] == "紧急隐患"
    assert codes.index("missing_manhole_cover") < codes.index("garbage_pileup")  # life-safety first


async def test_services_speak_english_when_asked(client, db):
    body, _ = await both(client, "services", headers={"Accept-Language": "en"})
    manhole = next(s for s in body if s["service_code"] == "missing_manhole_cover")
    assert (manhole["service_name"], manhole["group"]) == ("missing or broken manhole cover", "critical hazards")


async def test_a_service_definition_offers_the_client_id_attribute(client, db):
    body, root = await both(client, "services/flooding")
    assert root.tag == "service_definition"
    assert body["service_code"] == "flooding"
    (attribute,) = body["attributes"]
    assert list(attribute) == ATTRIBUTE_FIELDS
    assert (attribute["code"], attribute["datatype"], attribute["required"], attribute["variable"],
            attribute["order"], attribute["values"]) == ("client_id", "string", False, True, 1, [])
    assert root.find("attributes/attribute/values") is not None


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_unknown_and_disabled_services_are_404_in_the_spec_format(client, db, fmt):
    await db.execute("UPDATE categories SET enabled = false WHERE code = 'other'")
    for code in ("pothole", "other", "garbage_pileup%00", "x" * 300):
        assert_error(await client.get(f"{BASE}/services/{code}.{fmt}"), 404)


@pytest.mark.parametrize("path", ["services.html", "services/flooding.csv", "requests.yaml", "discovery",
                                  "requests/1.txt", "tokens/abcdefghijklmnopqrstu", "nothing.json"])
async def test_formats_and_resources_that_do_not_exist_are_404_in_the_spec_format(client, db, path):
    reply = await client.get(f"{BASE}/{path}")
    assert_error(reply, 404)
    assert reply.headers["content-type"].startswith("application/json" if path.endswith(".json") else "text/xml")


async def test_the_openapi_schema_still_publishes_with_open311(client):
    reply = await client.get("/schema/openapi.json")
    assert reply.status_code == 200
    paths = reply.json()["paths"]
    assert {"/open311/v2/requests.json", "/open311/v2/requests.xml", "/api/v1/incidents.geojson"} <= set(paths)
