"""Every error is problem+json with a machine code, in Chinese by default and English on request."""

from litestar import post
from litestar.params import JSONBody, RequestBody

from gridrider.errors import NotFound, ValidationFailed


async def test_unknown_path_is_a_chinese_problem_by_default(client):
    reply = await client.get("/api/v1/nothing-here")
    assert reply.status_code == 404
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert body["title"] == "找不到该内容。"


async def test_english_on_request(client):
    reply = await client.get("/api/v1/nothing-here", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert reply.json()["title"] == "Not found."
    assert reply.headers["content-language"] == "en"


async def test_chinese_wins_when_preferred(client):
    reply = await client.get("/api/v1/nothing-here", headers={"Accept-Language": "en;q=0.4, zh-CN"})
    assert reply.json()["title"] == "找不到该内容。"


async def test_wrong_method_is_405_with_a_code(client):
    reply = await client.post("/healthz")
    assert reply.status_code == 405
    assert reply.json()["code"] == "method_not_allowed"


async def test_domain_errors_keep_their_status_code_and_field_errors(client):
    from gridrider.errors import FieldError

    @post("/test/fails", opt={"access": "public"}, status_code=201)
    async def fails(data: JSONBody[dict]) -> dict:
        if data.get("kind") == "missing":
            raise NotFound()
        raise ValidationFailed(errors=[FieldError("lat", "out_of_range", "纬度超出范围")])

    client.app.register(fails)
    missing = await client.post("/test/fails", json={"kind": "missing"})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    invalid = await client.post("/test/fails", json={"kind": "invalid"})
    assert invalid.status_code == 422
    assert invalid.json()["errors"] == [{"field": "lat", "code": "out_of_range", "message": "纬度超出范围"}]


async def test_malformed_json_is_400_not_500(client):
    @post("/test/echo", opt={"access": "public"})
    async def echo(data: JSONBody[dict]) -> dict:
        return data

    client.app.register(echo)
    reply = await client.post("/test/echo", content=b"{not json", headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["code"] == "malformed_body"


async def test_body_over_the_limit_is_413(client):
    @post("/test/sink", opt={"access": "public"})
    async def sink(data: RequestBody[bytes]) -> dict:
        return {"n": len(data)}

    client.app.register(sink)
    too_big = client.app.state.services.settings.max_body_bytes + 1
    headers = {"content-type": "application/octet-stream"}
    reply = await client.post("/test/sink", content=b"x" * too_big, headers=headers)
    assert reply.status_code == 413
    assert reply.json()["code"] == "body_too_large"


async def test_an_unexpected_exception_is_a_500_problem_without_a_stack_trace(client):
    @post("/test/boom", opt={"access": "public"})
    async def boom() -> None:
        raise RuntimeError("secret internals")

    client.app.register(boom)
    reply = await client.post("/test/boom")
    assert reply.status_code == 500
    assert reply.json()["code"] == "internal"
    assert "secret internals" not in reply.text and "Traceback" not in reply.text


async def test_the_placeholder_pwa_is_served_at_the_root(client):
    reply = await client.get("/")
    assert reply.status_code == 200
    assert "随手拍" in reply.text


async def test_openapi_schema_is_published(client):
    reply = await client.get("/schema/openapi.json")
    assert reply.status_code == 200
    assert reply.json()["openapi"].startswith("3.1")


async def test_a_struct_body_with_bad_fields_gets_field_errors(client):
    import msgspec

    class Point(msgspec.Struct, forbid_unknown_fields=True):
        lat: float
        lon: float

    @post("/test/point", opt={"access": "public"})
    async def point(data: JSONBody[Point]) -> dict:
        return {"ok": True}

    client.app.register(point)
    wrong_type = await client.post("/test/point", json={"lat": "north", "lon": 1.0})
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"] == [{"field": "lat", "code": "invalid", "message": "字段 lat 的值无效。"}]
    unknown = await client.post("/test/point", json={"lat": 1.0, "lon": 1.0, "extra": 1})
    assert unknown.json()["errors"] == [{"field": "extra", "code": "unknown_field", "message": "不支持的字段 extra。"}]
    missing = await client.post("/test/point", json={"lat": 1.0}, headers={"Accept-Language": "en"})
    assert missing.json()["errors"] == [{"field": "lon", "code": "required", "message": "The field lon is required."}]


async def test_a_database_gone_mid_request_is_503_and_our_own_misuse_stays_500(client):
    """What asyncpg raises when the server went away under a request (tests/faults saw each as a 500) is a
    503 the outbox resends after Retry-After; an InterfaceError of our own making is still a 500."""
    import asyncpg

    raised = {
        "/test/released": asyncpg.InterfaceError(
            "cannot call Connection.fetchrow(): connection has been released back to the pool"),
        "/test/lost": asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed mid-operation"),
        "/test/starting": asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        "/test/deadlock": asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        "/test/refused": ConnectionRefusedError(111, "Connection refused"),
        "/test/misuse": asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    }
    def raising(error: Exception):
        async def handler() -> None:
            raise error
        return handler

    for path, error in raised.items():
        client.app.register(post(path, opt={"access": "public"}, name=path)(raising(error)))
    for path in raised:
        reply = await client.post(path)
        if path == "/test/misuse":
            assert (reply.status_code, reply.json()["code"]) == (500, "internal"), path
        else:
            assert (reply.status_code, reply.json()["code"]) == (503, "service_unavailable"), path
            assert reply.headers["retry-after"] == "2"
