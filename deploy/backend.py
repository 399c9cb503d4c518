"""One implementation per IR node type, per backend.

A backend (the NumPy reference, ``agn``'s torch executor, the C emitter) is a :class:`Backend`
whose functions are registered per node type::

    REFERENCE = Backend("NumPy reference")

    @REFERENCE.register(MaxPool)
    def _maxpool(node: MaxPool, ins, infos): ...

    out = REFERENCE(node, ins, infos)  # the function registered for type(node)

Lookup is by the exact node type (a subclass does not inherit its parent's function), so a node
type a backend does not know is a :class:`~deploy.errors.BackendError` naming both, never a
silent fallback.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from deploy.errors import BackendError
from deploy.ir import Node, op_types

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


class Backend(Generic[R]):
    """A named table ``node type -> function(node, *args) -> R``.

    Args:
        name: how errors name the backend (e.g. ``"NumPy reference"``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._impls: dict[type[Node], Callable[..., R]] = {}

    def register(self, *node_types: type[Node]) -> Callable[[F], F]:
        """Decorator registering the function for each of ``node_types`` (once per type)."""
        for t in node_types:
            if not (isinstance(t, type) and issubclass(t, Node)):
                raise TypeError(f"{self.name}: register() expected IR node types, got {t!r}")

        def deco(fn: F) -> F:
            for t in node_types:
                if t in self._impls:
                    raise BackendError(f"{self.name}: node type {t.__name__} is already "
                                       f"registered ({self._impls[t].__qualname__})")
                self._impls[t] = fn
            return fn
        return deco

    def lookup(self, node_type: type[Node]) -> Callable[..., R]:
        """The function registered for ``node_type`` (BackendError naming both otherwise)."""
        try:
            return self._impls[node_type]
        except KeyError:
            raise BackendError(
                f"the {self.name} has no implementation for node type {node_type.__name__} "
                f"(op {node_type.op!r}); register one with @<backend>.register("
                f"{node_type.__name__})") from None

    def __call__(self, node: Node, *args: Any) -> R:
        """Run the function registered for ``type(node)`` on ``node`` and ``args``."""
        return self.lookup(type(node))(node, *args)

    def missing(self, node_types: Iterable[type[Node]] | None = None) -> list[str]:
        """Names of the ``node_types`` (by default :func:`deploy.ir.op_types`) not registered."""
        return [t.__name__ for t in (op_types() if node_types is None else node_types)
                if t not in self._impls]

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, {sorted(t.__name__ for t in self._impls)})"
