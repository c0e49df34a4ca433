"""OpenAI's Batch API: request lines, submitting batches, collecting their results."""
