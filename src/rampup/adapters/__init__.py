"""Driven adapters: storage, wire codecs, metric sources, notifiers."""
