"""Import strings ``package.module:attribute``: how a user names their own model or data module."""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_object"]


def import_object(spec: str, what: str) -> Any:
    """The object an import string ``package.module:attr[.attr...]`` names.

    Args:
        spec: the import string.
        what: what the caller expects there (named in errors), e.g. ``"a LightningDataModule
            class"``.

    Raises:
        ValueError: a string without ``:``, a module that cannot be imported or a missing
            attribute, naming the string and ``what``.
    """
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{spec!r}: expected an import string 'package.module:name' naming "
                         f"{what}")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{spec!r}: cannot import {attr!r} from {module!r} (expected {what}): "
                         f"{exc}") from None
    return obj
