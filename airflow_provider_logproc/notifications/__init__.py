"""Notifications of the logproc provider."""
