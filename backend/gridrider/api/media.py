"""Photos behind signed, expiring URLs; originals are never served."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from gridrider.api.schemas import RowId
from gridrider.db import photos as db_photos
from gridrider.errors import DomainError, NotFound
from gridrider.images.urls import signature_valid
from gridrider.services import Services


class PhotoLinkInvalid(DomainError):
    status, code = 403, "photo_link_invalid"


class MediaController(Controller):
    path = "/api/v1/photos"

    # Public in the sense of "no Bearer header": the signature is the permission, so <img> tags work.
    @get("/{photo_id:int}/{variant:str}", operation_id="getPhoto", opt={"access": "public"})
    async def photo(self, services: NamedDependency[Services], photo_id: RowId, variant: FromPath[str],
                    exp: FromQuery[int] = 0, sig: FromQuery[str] = "") -> Response[bytes]:
        now = services.clock.now()
        if not signature_valid(services.settings.url_signing_secret, photo_id, variant, exp, sig[:64], now):
            raise PhotoLinkInvalid()
        found = await db_photos.ready_variant(services.pool, photo_id, variant)
        if found is None:
            raise NotFound()
        key, content_type = found
        data = await services.blobs.get(key)
        max_age = max(0, int(exp - now.timestamp()))
        return Response(data, media_type=content_type, headers={
            "X-Content-Type-Options": "nosniff", "Cache-Control": f"private, max-age={max_age}",
        })
