"""Exceptions raised by hwlib: every message names the bad value and what was expected."""


class SpecError(ValueError):
    """A multiplier spec string that cannot be parsed or names an unknown multiplier."""


class DomainError(ValueError):
    """An operand outside the domain a multiplier declares."""


class TableError(ValueError):
    """A multiplier table (file or array) of the wrong shape, dtype or content."""


class AssignmentError(ValueError):
    """A multiplier assignment (or its file) of the wrong shape, or one that does not fit the
    network, model or catalog it is applied to."""
