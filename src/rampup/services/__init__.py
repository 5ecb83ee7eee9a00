"""Use cases. They take ports (store, clock) and core values; they never import an adapter."""
