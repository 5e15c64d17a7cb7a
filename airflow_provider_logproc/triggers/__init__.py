"""Triggers of the logproc provider."""
