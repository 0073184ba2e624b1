"""Developer tooling: the `reelforge` CLI, its HTTP client, the embedded stack and its supervisor."""
