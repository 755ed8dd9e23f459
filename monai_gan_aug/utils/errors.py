# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""The project's error messages are the last lines a user sees.

``python -m monai.bundle run`` evaluates every ``$`` expression and ``_target_`` of a config through MONAI's
config parser, which wraps any exception in ``RuntimeError: Failed to evaluate ConfigExpression ...`` (or
``Failed to instantiate``). Python then prints the project's message first, 19-34 frames above the end, and the
last line is MONAI's generic one. :func:`install_excepthook` (called when ``monai_gan_aug`` is imported, which
every bundle config does) adds a summary after the usual traceback: the innermost error, i.e. the one that says
what is wrong (the file, the problem, what to do), and where in the config it was raised.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType

__all__ = ["root_cause", "is_config_wrapper", "format_user_error", "install_excepthook"]

#: Messages MONAI's config parser uses when it wraps an exception (monai.bundle.config_item / reference_resolver).
#: and MONAI's ``apply_transform`` when a transform of a pipeline (e.g. the image loader in a CacheDataset) raises.
_WRAPPER_PREFIXES = ("Failed to evaluate", "Failed to instantiate", "Component to instantiate must represent",
                     "applying transform")
_HOOK_MARK = "_monai_gan_aug_hook"


def _wrapped_by(exc: BaseException) -> BaseException | None:
    """The exception ``exc`` was raised from or while handling (None at the bottom of the chain)."""
    if exc.__cause__ is not None:
        return exc.__cause__
    if exc.__context__ is not None and not exc.__suppress_context__:
        return exc.__context__
    return None


def is_config_wrapper(exc: BaseException) -> bool:
    """Whether ``exc`` is MONAI's generic wrapper of an error raised inside a config expression or component, or
    inside a transform applied by ``apply_transform``."""
    return isinstance(exc, RuntimeError) and str(exc).startswith(_WRAPPER_PREFIXES) and _wrapped_by(exc) is not None


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception below MONAI's config wrappers (``exc`` itself when it wraps nothing).

    Only wrappers are walked through: an error that a project function raised *from* a lower-level one (e.g. a
    ``ValueError`` naming the file, raised from a decoder's error) is the message to show, not its cause.
    """
    seen: set[int] = set()
    while is_config_wrapper(exc) and id(exc) not in seen:
        seen.add(id(exc))
        inner = _wrapped_by(exc)
        if inner is None:  # is_config_wrapper requires a wrapped error; kept for type checkers
            break
        exc = inner
    return exc


def _config_expressions(exc: BaseException) -> list[str]:
    """The config expressions / components MONAI was evaluating, outermost first (one line each)."""
    out: list[str] = []
    while is_config_wrapper(exc):
        text = " ".join(str(exc).split())
        for prefix in ("Failed to evaluate ", "Failed to instantiate "):
            text = text[len(prefix):] if text.startswith(prefix) else text
        if not text.startswith("applying transform"):  # a transform wrapper says nothing about the config
            out.append(text[:160] + ("..." if len(text) > 160 else ""))
        exc = _wrapped_by(exc)  # type: ignore[assignment]
    return out


def format_user_error(exc: BaseException) -> str:
    """The closing summary printed after the traceback: what went wrong, in the project's words, as the last
    lines. Empty when ``exc`` is not a wrapped error (then Python's own last line already is the message)."""
    root = root_cause(exc)
    if root is exc:
        return ""
    where = _config_expressions(exc)
    lines = ["", "=" * 78]
    if where:
        lines += [f"While MONAI's config parser evaluated {where[-1]}", ""]
    lines += ["The run stopped with this error:", f"{type(root).__name__}: {root}"]
    return "\n".join(lines)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    previous = getattr(_excepthook, "previous", sys.__excepthook__)
    try:
        summary = format_user_error(exc)
    except Exception:  # never let the summary hide the original error
        summary = ""
    if summary and not os.environ.get("MONAI_GAN_AUG_FULL_TRACEBACK"):
        # the wrappers' frames are MONAI's resolver recursion: print the root error's own traceback only
        root = root_cause(exc)
        sys.stderr.write("".join(traceback.format_exception(type(root), root, root.__traceback__)))
        sys.stderr.write(
            "\n(MONAI wrapped this error in its config parser / transform errors; set MONAI_GAN_AUG_FULL_TRACEBACK=1 "
            "for the full traceback.)\n"
        )
    else:
        previous(exc_type, exc, tb)
    if summary:
        sys.stderr.write(summary + "\n")
        sys.stderr.flush()


def install_excepthook() -> None:
    """Install the summary hook once, chaining whatever hook was there (IPython and debuggers keep theirs)."""
    current = sys.excepthook
    if getattr(current, _HOOK_MARK, False):
        return
    _excepthook.previous = current  # type: ignore[attr-defined]
    setattr(_excepthook, _HOOK_MARK, True)
    sys.excepthook = _excepthook
