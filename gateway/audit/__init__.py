"""The audit log: redacted records, hash chains, signed digests, object stores and the verifier.

Modules: `store` (the object-store interface + memory/file stores), `layout` (object keys, pure functions),
`canonical` (canonical JSON bytes), `record` (the record model), `chain` (stream/session chaining),
`digest` (signed Ed25519 digests) and `verify` (the offline verifier).
"""
