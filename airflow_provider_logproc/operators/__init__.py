"""Operators of the logproc provider."""
