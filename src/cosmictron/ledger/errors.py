"""The ledger's errors: each failed check names what failed with a stable ``reason``.

They sit under the root hierarchy (``cosmictron.errors``) so the server and the CLI
translate them like any other error: a proof, note, signature or timestamp that does not
check is a :class:`~cosmictron.errors.VerificationFailed` (422); a key or algorithm that
can never be used is a :class:`~cosmictron.errors.ConfigError` (400). ``reason`` is a
snake_case word a program (and a test) can match on without parsing the message; the
later ``verify`` command maps these to its own stable codes and first bad sequence
number.
"""

from __future__ import annotations

from cosmictron.errors import (
    ConfigError,
    CosmictronError,
    DurabilityError,
    NotFound,
    VerificationFailed,
)


class ProofInvalid(VerificationFailed):
    """An inclusion or consistency proof does not prove what it claims.

    ``reason`` is one of ``index_out_of_range``, ``bad_sizes``, ``bad_hash_length``,
    ``wrong_proof_length``, ``root_mismatch``, ``empty_tree``.
    """

    code = "proof_invalid"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"Merkle proof rejected ({reason}): {message}")
        self.reason = reason


class ProofUnavailable(NotFound):
    """A proof that needs tree hashes this node does not hold (404).

    ``reason`` is ``below_base``: the node joined a replicated log from a snapshot at
    offset ``base`` and holds only the tree's compact range there
    (``merkle.BasedHashStore``), so it proves inclusion of records after ``base`` and
    consistency between tree sizes of at least ``base``, nothing below. A node that holds
    the whole history (one that copied it from record 1, or archived it) proves the rest
    (docs/design/cluster.md, "Snapshots and trimming").
    """

    code = "proof_unavailable"

    def __init__(self, reason: str, message: str, base: int) -> None:
        super().__init__(
            f"proof unavailable here ({reason}): {message}; ask a node that holds the "
            f"records up to {base} (one that copied the log from record 1)"
        )
        self.reason = reason
        self.base = base


class NoteMalformed(VerificationFailed):
    """A signed note or checkpoint is not in the C2SP text format; ``reason`` says where."""

    code = "note_malformed"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"malformed signed note ({reason}): {message}")
        self.reason = reason


class SignatureInvalid(VerificationFailed):
    """A signature did not verify, or no trusted key signed, or the key was out of range.

    ``reason`` is one of ``bad_signature``, ``no_trusted_signature``, ``key_out_of_range``,
    ``unknown_key``.
    """

    code = "signature_invalid"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"signature rejected ({reason}): {message}")
        self.reason = reason


class AlgorithmRefused(VerificationFailed):
    """A record or key names an algorithm id that is unknown or too weak (SHA-1)."""

    code = "algorithm_refused"

    def __init__(self, algorithm: str, message: str) -> None:
        super().__init__(f"algorithm refused ({algorithm}): {message}")
        self.reason = "algorithm_refused"
        self.algorithm = algorithm


class KeyUnavailable(ConfigError):
    """A signing key could not be loaded: missing, unreadable, malformed or too open.

    ``reason`` is one of ``missing``, ``malformed``, ``permissions``, ``env_malformed``.
    """

    code = "key_unavailable"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"signing key unavailable ({reason}): {message}")
        self.reason = reason


class TimestampInvalid(VerificationFailed):
    """An RFC 3161 response or token failed one of the checks; ``reason`` names which.

    Reasons: ``malformed``, ``status`` (the TSA refused), ``imprint_mismatch``,
    ``nonce_mismatch``, ``policy_mismatch``, ``bad_signature``, ``content_digest``,
    ``untrusted_chain``, ``missing_eku``, ``bad_cert_binding``, ``unsupported_algorithm``,
    ``signer_not_found``.
    """

    code = "timestamp_invalid"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"timestamp token rejected ({reason}): {message}")
        self.reason = reason


class TsaUnavailable(CosmictronError):
    """The TSA could not be reached or answered without a timestamp response (HTTP error).

    Distinct from :class:`TimestampInvalid`: an outage is retried later and never blocks
    commits (unless a strict mode says so); a bad token is evidence of a problem.
    """

    code = "tsa_unavailable"
    http_status = 503


class AnchoringOverdue(DurabilityError):
    """Strict anchoring refuses a commit: the oldest record no RFC 3161 anchor covers is
    older than ``anchor_max_lag_ms`` (``anchor_strict = true``). Nothing was written;
    retry once a TSA answers (``durability/anchorer.py``)."""

    code = "anchoring_overdue"
    http_status = 503
