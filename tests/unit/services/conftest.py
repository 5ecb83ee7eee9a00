"""Services over the in-memory store: what they decide and keep, without a database. That the SQL stores keep
the same promises is tests/store/contract's job."""

from collections.abc import Callable, Iterator

import pytest

from rampup.adapters.storage.memory import MemoryStore
from rampup.bootstrap import Container, build_container, prepare
from rampup.config import Settings
from rampup.core.ports import Clock


@pytest.fixture
def memory_container() -> Callable[..., Container]:
    """A prepared container on a fresh in-memory store (or on `store`, to be a second instance of it)."""

    def make(clock: Clock, store: MemoryStore | None = None) -> Container:
        settings = Settings(admin_token="t0ken", allowed_hosts="127.0.0.1")
        c = build_container(settings, clock=clock, store=store or MemoryStore())
        prepare(c)
        return c

    return make


@pytest.fixture
def with_channels(memory_container: Callable[..., Container]) -> Iterator[Callable[..., Container]]:
    """A container on `clock` with a webhook channel of each name (made in that order), the example flag
    `workstation` telling `owners` of its changes; closed after the test."""
    made: list[Container] = []

    def make(clock: Clock, *channels: str) -> Container:
        container = memory_container(clock)
        made.append(container)
        for name in channels:
            channel = {"name": name, "type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s" * 16}
            container.notifications.create_channel(channel, "dana")
        container.flags.update_flag("workstation", {"notify": ["owners"]}, "dana")
        return container

    yield make
    for container in made:
        container.close()


@pytest.fixture
def container(memory_container: Callable[..., Container], clock: Clock) -> Iterator[Container]:
    """A container on the module's `clock`, closed after the test."""
    made = memory_container(clock)
    yield made
    made.close()
