"""The error every spec check raises: a task spec, template or input that cannot become a Batch task."""

from __future__ import annotations


class BatchSpecError(ValueError):
    """A task spec, template or input that cannot become a Batch task; the message says where."""
