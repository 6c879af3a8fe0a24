"""Web Push: VAPID keys, encryption through `webpush`, SSRF-safe delivery (built with the Web Push issue)."""
