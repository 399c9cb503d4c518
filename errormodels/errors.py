"""Exceptions raised by errormodels: each message names the bad value and what was expected."""


class StatsError(ValueError):
    """Operand statistics (a record or an ``operand_stats.npz`` file) that are malformed."""


class SigmasError(ValueError):
    """A ``sigmas.json`` entry that is missing, NaN, or does not match the operand statistics."""


class AssignmentError(ValueError):
    """An ``assignment.json`` file, or an assignment's arguments, of the wrong shape or content."""
