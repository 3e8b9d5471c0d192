"""taquba-memo-conformance: one pytest suite that every MemoBackend must pass."""
