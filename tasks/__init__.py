"""The work of the pipeline: one sub-package per stage of the data flow.

config (job config, model capabilities) -> manifest (read, validate) ->
plan (jobs, asset ids, prices) -> generation (providers, rate limiter,
dispatch) with budget (reservations, claims, the shared ledger) or batch
(the Batch API) -> store (originals and sidecars) -> renditions ->
catalog -> reporting (summaries, artifacts, the contact sheet). runtime holds
what keeps the processes of a run together.
"""
