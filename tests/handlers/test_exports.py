# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Every public handler class of ``monai_gan_aug/handlers/`` is exported from ``monai_gan_aug.handlers`` (issue 16),
so configs and users never need to know which module a handler lives in."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import monai_gan_aug.handlers as handlers


def test_every_handler_class_is_exported():
    missing = []
    for info in pkgutil.iter_modules(handlers.__path__):
        module = importlib.import_module(f"{handlers.__name__}.{info.name}")
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and not name.startswith("_") and name not in handlers.__all__:
                missing.append(f"{info.name}.{name}")
    assert not missing, f"not exported from monai_gan_aug.handlers: {missing}"
    assert all(getattr(handlers, name) is not None for name in handlers.__all__)
