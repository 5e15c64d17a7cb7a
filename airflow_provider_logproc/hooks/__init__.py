"""Hooks of the logproc provider."""
