"""Open311 GeoReport v2 for city systems (12345 hotlines, 数字城管 platforms), under /open311/v2.

- `formats`: one body, rendered as the spec's JSON (Spark convention) or XML, with its error format;
- `services`: categories as services, incidents as service requests and their status updates;
- `keys`: API keys (one `system` member each), their authentication and their area;
- `intake`: POST requests, filed as reports through the ordinary pipeline and answered with a token;
- `queries`: the GET filters (ids, service codes, status, W3C date ranges) and their limits.

The HTTP edge is api/open311.py; SQL is in db/open311.py and db/apikeys.py.
"""
