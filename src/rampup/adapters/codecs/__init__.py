"""Wire formats: bytes and dicts to and from core values. Pure: no web framework, no database."""
