"""Talking to remote APIs: an injectable clock, API keys that never reach a log, and one retry
policy (backoff, ``Retry-After``, which statuses are worth retrying). Shared by the generation
backends (:mod:`gencritic.generate`) and the OpenAI-compatible VLM endpoints
(:mod:`gencritic.models.vlm_endpoint`), below both in the layer order (docs/architecture.md)."""
