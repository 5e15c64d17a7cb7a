"""Sensors of the logproc provider."""
