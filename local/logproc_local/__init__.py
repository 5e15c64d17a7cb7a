"""Local of the logproc provider."""
