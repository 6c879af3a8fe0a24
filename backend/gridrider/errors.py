"""Typed errors the domain raises; only the API edge turns them into HTTP (api/problems.py).

Every error has a machine `code` and a message in zh-CN and English, looked up in MESSAGES by code
so the same code always reads the same to a person.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

# code → (zh-CN, en). One place for every human text an error can carry.
MESSAGES: dict[str, tuple[str, str]] = {
    "internal": ("服务器出错了，请稍后重试。", "Something went wrong on our side; please try again."),
    "not_found": ("找不到该内容。", "Not found."),
    "method_not_allowed": ("不支持该请求方法。", "This method is not allowed here."),
    "body_too_large": ("上传内容太大。", "The request body is too large."),
    "validation_failed": ("提交的内容有误，请检查后重试。", "Some fields are invalid; please check them."),
    "malformed_body": ("请求格式不正确。", "The request body could not be read."),
    "unauthorized": ("请先登录。", "Please sign in."),
    "forbidden": ("没有权限执行此操作。", "You are not allowed to do this."),
    "rate_limited": ("操作太频繁，请稍后再试。", "Too many requests; please try again shortly."),
    "invalid_transition": ("当前状态下不能执行此操作。", "This action is not possible in the current state."),
    "conflict": ("内容已被他人修改，请刷新后重试。", "Someone else changed this; refresh and try again."),
    "unsupported_media_type": ("不支持的文件类型。", "This file type is not supported."),
    "service_unavailable": ("服务暂时不可用。", "The service is temporarily unavailable."),
    "enrolment_invalid": ("激活码或手机号后四位不正确。", "The code or the last four phone digits are wrong."),
    "enrolment_expired": ("激活码已过期，请联系管理员重新发放。", "This code has expired; ask your supervisor for a new one."),
    "enrolment_used": ("激活码已使用过，请联系管理员重新发放。", "This code was already used; ask your supervisor for a new one."),
    "enrolment_locked": ("错误次数太多，激活码已锁定，请联系管理员。", "Too many wrong tries; this code is locked."),
    "privacy_notice_required": ("请先阅读并同意隐私说明。", "Please read and accept the privacy notice first."),
    "client_id_reused": ("这条上报的编号已用于另一条内容不同的上报。",
                         "This report id was already used for a different report."),
    "malformed_multipart": ("上传内容格式不正确。", "The upload could not be read."),
    "too_many_photos": ("最多只能上传 3 张照片。", "At most 3 photos per report."),
    "photo_too_large": ("照片太大（每张不超过 12 MB）。", "A photo is too large (12 MB at most)."),
    "photo_type_not_allowed": ("只支持 JPEG、PNG 或 WebP 照片。", "Only JPEG, PNG or WebP photos are accepted."),
    "photo_too_many_pixels": ("照片像素太多（不超过 5000 万像素）。", "A photo has too many pixels (50 MP at most)."),
    "photo_animated": ("不支持动图。", "Animated images are not accepted."),
    "photo_link_invalid": ("图片链接无效或已过期，请刷新页面。", "This photo link is invalid or has expired; reload the page."),
    "photo_unreadable": ("照片文件已损坏，无法读取。", "A photo file could not be read."),
    "insufficient_points": ("积分不足，无法兑换。", "Not enough points for this reward."),
    "reward_unavailable": ("该奖品已下架或已兑完。", "This reward is disabled or out of stock."),
    "already_decided": ("该兑换申请已处理过。", "This redemption was already decided."),
    "push_endpoint_malformed": ("推送地址格式不正确。", "The push endpoint is not a valid URL."),
    "push_endpoint_too_long": ("推送地址太长。", "The push endpoint is too long."),
    "push_endpoint_not_https": ("推送地址必须使用 https。", "The push endpoint must use https."),
    "push_endpoint_userinfo": ("推送地址不能包含用户名或密码。", "The push endpoint must not contain a user name or password."),
    "push_endpoint_port": ("推送地址只能使用 443 端口。", "The push endpoint must use port 443."),
    "push_endpoint_ip_literal": ("推送地址不能是 IP 地址。", "The push endpoint must name a host, not an IP address."),
    "push_endpoint_host_not_allowed": ("不支持该推送服务。", "This push service is not supported."),
    "push_key_invalid": ("推送公钥 p256dh 无效（应为 P-256 公钥）。", "The p256dh key is not a valid P-256 public key."),
    "wecom_webhook_invalid": ("企业微信群机器人地址无效。", "This is not a WeCom group robot webhook URL."),
    "wecom_webhook_malformed": ("群机器人地址格式不正确。", "The webhook URL is malformed."),
    "wecom_webhook_not_https": ("群机器人地址必须使用 https。", "The webhook URL must use https."),
    "wecom_webhook_userinfo": ("群机器人地址不能包含用户名或密码。", "The webhook URL must not contain a user name or password."),
    "wecom_webhook_host": ("群机器人地址必须是 qyapi.weixin.qq.com。", "The webhook host must be qyapi.weixin.qq.com."),
    "wecom_webhook_port": ("群机器人地址只能使用 443 端口。", "The webhook URL must use port 443."),
    "wecom_webhook_path": ("群机器人地址的路径必须是 /cgi-bin/webhook/send。", "The webhook path must be /cgi-bin/webhook/send."),
    "wecom_webhook_query": ("群机器人地址只能带一个 key 参数。", "The webhook URL must carry exactly one key parameter."),
    "wecom_webhook_key": ("群机器人 key 格式不正确（应为 UUID）。", "The robot key must be a UUID."),
    "push_auth_invalid": ("推送密钥 auth 无效（应为 16 字节）。", "The auth secret must be 16 bytes."),
    # Area import (domain/area_import.py): the file as a whole, then one code per kind of problem in it.
    "areas_file_invalid": ("区域文件不是有效的 GeoJSON FeatureCollection。", "The areas file is not a valid GeoJSON FeatureCollection."),
    "areas_import_invalid": ("区域文件未通过校验，未导入任何内容。", "The areas file did not pass the checks; nothing was imported."),
    "areas_import_conflict": ("区域数据在导入时被修改，未导入任何内容，请重试。", "The areas changed during the import; nothing was imported, please try again."),
    "area_feature_invalid": ("每一项必须是带 properties 和 geometry 的 GeoJSON Feature。", "Each feature must be a GeoJSON Feature with properties and a geometry."),
    "area_code_invalid": ("区域编码须以字母或数字开头，只含字母、数字、点和短横线，最多 64 个字符。", "The area code must start with a letter or digit and contain only letters, digits, '.' and '-' (64 at most)."),
    "area_code_duplicate": ("该区域编码在文件中出现了不止一次。", "This area code appears more than once in the file."),
    "area_level_invalid": ("级别必须是 county、street、community 或 grid。", "The level must be county, street, community or grid."),
    "area_name_invalid": ("name_zh 必填（1 到 100 个字符）；name_en 如填写也须为 1 到 100 个字符。", "name_zh is required (1 to 100 characters); name_en, when given, is 1 to 100 characters."),
    "area_parent_missing": ("除县以外，每个区域都要填写上级区域编码 parent。", "Every area but a county needs a parent code."),
    "area_parent_unexpected": ("县级区域没有上级区域。", "A county has no parent."),
    "area_parent_unknown": ("上级区域编码既不在文件中，也不在数据库中。", "The parent code is neither in the file nor in the database."),
    "area_level_order": ("上级区域的级别必须更高（县 > 街道 > 社区 > 网格）。", "The parent must be on a higher level (county > street > community > grid)."),
    "area_level_changed": ("已有区域的级别不能通过导入修改。", "An import cannot change the level of an existing area."),
    "area_moved_with_children": ("该区域下还有下级区域，不能改到别的上级区域下。", "An area that has children cannot move to another parent."),
    "area_geometry_required": ("网格必须有边界多边形。", "A grid needs a polygon."),
    "area_geometry_type": ("边界必须是 Polygon 或 MultiPolygon（非网格区域也可以为 null）。", "The geometry must be a Polygon or a MultiPolygon (or null, except for a grid)."),
    "area_coordinates_invalid": ("坐标格式不正确：每个点应为 [经度, 纬度] 两个数字。", "The coordinates are malformed: each position must be [longitude, latitude] numbers."),
    "area_coordinate_out_of_range": ("坐标超出范围（经度 -180 到 180，纬度 -90 到 90）。", "A coordinate is out of range (longitude -180 to 180, latitude -90 to 90)."),
    "area_ring_too_short": ("多边形的环至少需要 4 个点。", "A polygon ring needs at least 4 positions."),
    "area_ring_not_closed": ("多边形的环没有闭合（最后一个点须与第一个点相同）。", "A polygon ring is not closed (its last position must equal its first)."),
    "area_geometry_invalid": ("多边形无效（例如边界自相交）。", "The polygon is not valid (for example, its boundary crosses itself)."),
    "area_overlap": ("两个网格互相重叠；重叠处的上报会分给较小的网格。", "Two grids overlap; a report in the overlap goes to the smaller grid."),
    "area_gap": ("区域内有一块不属于任何下级网格；那里的上报会分给 30 米内最近的网格，否则无法自动分派。", "Part of the area is in none of its grids; a report there goes to the nearest grid within 30 m, or stays unrouted."),
    "date_invalid": ("日期格式不正确，应为 YYYY-MM-DD。", "The date must be a real day written YYYY-MM-DD."),
    "date_range_reversed": ("开始日期不能晚于结束日期。", "The start date is after the end date."),
    "date_range_too_long": ("时间范围不能超过 366 天。", "The range may span at most 366 days."),
    "date_out_of_range": ("日期须在 2000-01-01 至 2099-12-31 之间。", "Dates must lie between 2000-01-01 and 2099-12-31."),
    "area_not_found": ("找不到该区域，或不在您的管辖范围内。", "No such area within your jurisdiction."),
    # Open311 (open311/): rendered as GeoReport v2 errors, not problem+json.
    "open311_invalid": ("请求参数有误。", "The request has invalid parameters."),
    "open311_format": ("只提供 .json 和 .xml 两种格式。", "Only the .json and .xml formats are offered."),
    "api_key_invalid": ("缺少 api_key，或 api_key 无效、已吊销。", "The api_key is missing, wrong or revoked."),
    "outside_key_area": ("该位置不在此 api_key 的辖区内。", "This position lies outside the area of this api_key."),
    "service_not_found": ("没有这个服务代码（service_code）。", "No such service_code."),
    "token_not_found": ("没有这个 token。", "No such token."),
    "location_required": ("需要 lat 和 long；本接口不按地址定位。", "lat and long are required; addresses are not geocoded here."),
    "media_url_invalid": ("media_url 必须是 http 或 https 链接。", "media_url must be an http or https URL."),
    "datetime_invalid": ("时间须为带时区的 W3C 格式，如 2026-11-26T10:00:00+08:00。", "Times must be W3C datetimes with a time zone, e.g. 2026-11-26T10:00:00+08:00."),
    "range_too_long": ("start_date 与 end_date 相差不能超过 90 天。", "start_date and end_date may span at most 90 days."),
    # CSV exports (api/exports.py).
    "export_lang_unsupported": ("导出语言只能是 zh 或 en。", "The export language must be zh or en."),
    # Member list filters (api/members.py).
    "member_role_invalid": ("角色筛选只能是 courier、grid_member、supervisor 或 admin。", "The role filter must be courier, grid_member, supervisor or admin."),
    "member_status_invalid": ("状态筛选只能是 active、deactivated 或 pseudonymised。", "The status filter must be active, deactivated or pseudonymised."),
    "member_search_invalid": ("搜索内容需为 1 到 40 个字符，且不能包含控制字符。", "The search text must be 1 to 40 characters without control characters."),
    "text_invalid_character": ("提交的文字含有无法保存的字符（例如空字符）。", "The text contains a character that cannot be stored (such as NUL)."),
    "report_archived": ("这条上报很久以前已经收到，现已归档。", "This report was received long ago and is now archived."),
    "cursor_invalid": ("分页参数无效，请从第一页重新加载。", "The page cursor is invalid; reload from the first page."),
}


# Field-level codes in English; the domain writes its field messages in Chinese (the default language)
# and the API edge swaps in these when the caller asked for English. {field} is the field's name.
FIELD_MESSAGES_EN: dict[str, str] = {
    "required": "The field {field} is required.",
    "unknown_field": "The field {field} is not accepted.",
    "invalid": "The value of {field} is invalid.",
    "duplicate": "{field} may appear only once.",
    "invalid_json": "{field} is not a valid JSON object.",
    "not_a_file": "{field} must be a file.",
    "too_large": "{field} is too large.",
    "too_long": "{field} is too long.",
    "invalid_character": "{field} contains an invalid character.",
    "out_of_range": "{field} is out of range.",
    "in_the_future": "The capture time is in the future; check the phone's clock.",
    "too_old": "The capture time is more than 30 days ago.",
    "timezone_required": "{field} needs a time zone.",
    "unknown_category": "Unknown hazard category.",
    "category_disabled": "This hazard category is no longer in use.",
    "too_many_photos": "At most 3 photos per report.",
    "invalid_phone": "Enter an 11-digit mainland mobile number.",
    "invalid_length": "{field} must be 1 to 40 characters.",
    "invalid_role": "Unsupported role.",
    "invalid_platform": "Choose the rider's platform.",
    "invalid_areas": "Choose 1 to 20 different areas.",
    "wrong_area_level": "This role cannot be attached to areas of that level.",
}


def localise_field_error(error: FieldError, lang: str) -> FieldError:
    """The same field error with its message in the caller's language."""
    if error.code in MESSAGES:  # codes with a full zh/en pair (the photo checks)
        return FieldError(error.field, error.code, message_for(error.code, lang))
    if lang == "en" and error.code in FIELD_MESSAGES_EN:
        return FieldError(error.field, error.code, FIELD_MESSAGES_EN[error.code].format(field=error.field))
    return error


def message_for(code: str, lang: str) -> str:
    zh, en = MESSAGES.get(code, MESSAGES["internal"])
    return en if lang == "en" else zh


class FieldError(msgspec.Struct, frozen=True):
    field: str
    code: str
    message: str


class DomainError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, detail: str | None = None, *, errors: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail  # extra English detail for logs and developers; never a secret
        self.errors = errors or []
        self.headers = headers or {}


class NotFound(DomainError):
    status, code = 404, "not_found"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class ValidationFailed(DomainError):
    status, code = 422, "validation_failed"


class InvalidTransition(DomainError):
    status, code = 409, "invalid_transition"


class ReportArchived(DomainError):
    """A replayed client_id whose report has been archived: it was received; nothing more to do."""
    status, code = 410, "report_archived"


class Conflict(DomainError):
    status, code = 409, "conflict"


class PushSubscriptionRejected(DomainError):
    """A push subscription the sender must never use; `code` names the reason (push_endpoint_*, push_key_invalid)."""

    status = 422

    def __init__(self, code: str, detail: str | None = None) -> None:
        assert code in MESSAGES, code
        field = {"push_key_invalid": "keys.p256dh", "push_auth_invalid": "keys.auth"}.get(code, "endpoint")
        # The field error carries the same code, so the API edge gives its text in the caller's language.
        super().__init__(detail, errors=[FieldError(field, code, MESSAGES[code][0])])
        self.code = code  # type: ignore[misc]  # per instance: one class, many precise reasons


class RateLimited(DomainError):
    status, code = 429, "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(headers={"Retry-After": str(max(1, int(retry_after_s)))})
