"""Sending jobs to a provider: OpenAI or the placeholder, one rate limiter, retries, a run."""
