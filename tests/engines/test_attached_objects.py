# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""engines.utils.attached_objects: the one place that reads Ignite's registered handlers."""

from __future__ import annotations

import functools

from ignite.engine import Engine, Events

from monai_gan_aug.engines.utils import attached_objects


class _Owner:
    def __init__(self) -> None:
        self.writer = object()

    def on_event(self, engine: Engine) -> None:
        pass


def test_finds_bound_owners_wrapped_callables_and_arguments():
    engine = Engine(lambda e, b: None)
    owner, arg = _Owner(), object()

    def plain(engine: Engine, extra: object) -> None:
        pass

    @functools.wraps(owner.on_event)
    def wrapper(engine: Engine) -> None:
        pass

    engine.add_event_handler(Events.STARTED, owner.on_event)
    engine.add_event_handler(Events.COMPLETED, plain, arg)
    engine.add_event_handler(Events.ITERATION_COMPLETED, wrapper)
    found = attached_objects(engine)
    assert any(o is owner for o in found) and any(o is plain for o in found) and any(o is arg for o in found)
    assert sum(o is owner for o in found) == 1  # each object once, though two handlers lead to it
    assert attached_objects(Engine(lambda e, b: None)) == []
