"""The HTTP driving adapter: the admin API (FastAPI) and the OFREP hot path (plain ASGI)."""
