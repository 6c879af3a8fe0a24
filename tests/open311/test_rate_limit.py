"""POSTs are limited per key (an atomic counter in Redis, as report intake is), never for life-safety services."""

import msgspec
import pytest

from tests.open311.conftest import assert_error, post_request


@pytest.fixture
def settings(settings):
    """Two POSTs an hour per key, so the limit is reached quickly."""
    return msgspec.structs.replace(settings, open311_requests_per_hour=2)


async def test_posts_are_rate_limited_per_key_but_never_for_life_safety(client, db, hotline, make_key):
    assert (await post_request(client, hotline, **{"attribute[client_id]": "first"})).status_code == 201
    assert (await post_request(client, hotline)).status_code == 201
    limited = await post_request(client, hotline)
    assert_error(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert (await post_request(client, hotline, service_code="missing_manhole_cover")).status_code == 201
    # Another key has its own budget.
    other = await make_key("c02-platform", "ZW-ZWZ-C02")
    assert (await post_request(client, other)).status_code == 201
    # A retry of a request already filed is answered before the limit is looked at.
    assert (await post_request(client, hotline, **{"attribute[client_id]": "first"})).status_code == 200
    assert (await post_request(client, hotline, **{"attribute[client_id]": "second"})).status_code == 429


def test_the_limit_and_the_contact_come_from_the_environment():
    from gridrider.config import SettingsError, load_settings

    settings = load_settings({"GRIDRIDER_OPEN311_REQUESTS_PER_HOUR": "50", "GRIDRIDER_OPEN311_CONTACT": "拨打 12345"})
    assert (settings.open311_requests_per_hour, settings.open311_contact) == (50, "拨打 12345")
    for bad in ("0", "lots"):
        with pytest.raises(SettingsError, match="GRIDRIDER_OPEN311_REQUESTS_PER_HOUR"):
            load_settings({"GRIDRIDER_OPEN311_REQUESTS_PER_HOUR": bad})
