"""Who may run code on this server: the operator and the identities granted the right to deploy.

Python modules are trusted code: a module's import and its reducers run in the server
process with the server's rights (files, network, the signing key in memory). So creating
a database, deploying over one and restoring an archive as a new database (an archive
carries module source) need the *right to deploy*; a token from ``POST /v1/identity``
alone may call reducers and read public tables, nothing more (docs/guide/security.md).

The server's *operator* is an identity made on the first start; its token is kept in
``<data-dir>/server/operator.token`` (0600). The operator always has every right and is
the only identity that may grant or revoke one. Grants are kept in
``<data-dir>/server/grants.json``, rewritten whole on each change through a synced
temporary file and a rename (then the directory is synced), so after a crash the file is
the old one or the new one, never half of either; a grant is answered only once durable.
In cluster mode the grants are the cluster's (``share_with_cluster``, ``cluster/keys.py``):
a change goes to JetStream KV first, and every node follows it there.

The checks happen at the edge, in the route, before the request body is read: an
unauthorised upload is never written to disk, let alone imported.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from cosmictron import names
from cosmictron.errors import ConfigError, InvalidRequest, PermissionDenied, Unauthenticated
from cosmictron.server.auth import ANONYMOUS, TokenAuthority
from cosmictron.values import Identity

DEPLOY = "deploy"
"""The right to create a database, deploy over one and restore an archive as a new one."""

ALL_RIGHTS = (DEPLOY,)
"""Every right an identity may be granted (sandboxed-module rights would join here)."""

OPEN_SANDBOXED_DEPLOYS: web.AppKey[bool] = web.AppKey("open_sandboxed_deploys", bool)
"""The server option ``--open-sandboxed-deploys``: any identity with a token may create
databases with sandboxed (WASM, JavaScript) modules. Off by default (docs/guide/security.md)."""

OPERATOR_TOKEN_FILE = "operator.token"
GRANTS_FILE = "grants.json"
GRANTS_FORMAT_VERSION = 1

SECURITY_GUIDE = "docs/guide/security.md"


class Rights:
    """The operator's identity and every grant; checks and changes them.

    ``has`` and the ``require_*`` checks read an immutable snapshot, so the event loop
    may call them without a lock; ``grant`` and ``revoke`` write the file (blocking: run
    them off the event loop) under a lock and swap the snapshot once the file is durable.
    """

    def __init__(
        self,
        directory: Path,
        operator: Identity,
        operator_token: str,
        granted: dict[str, frozenset[Identity]],
    ) -> None:
        self.directory = directory
        self.operator = operator
        self.operator_token = operator_token
        self._granted = {right: granted.get(right, frozenset()) for right in ALL_RIGHTS}
        self._changes = threading.Lock()
        self.shared: Callable[[str, str, bool], Mapping[str, Iterable[str]]] | None = None
        """Cluster mode: grants or revokes a right cluster-wide and returns the cluster's
        grants (``cluster.keys.change_grant``); None on one server."""

    @classmethod
    def load_or_create(cls, directory: Path, authority: TokenAuthority) -> Rights:
        """Read the operator token and the grants in ``directory``; make the operator on
        first start.

        Raises:
            ConfigError: ``operator.token`` is not a token of this server's key, or
                ``grants.json`` is not a grants file this version reads.
        """
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        token_path = directory / OPERATOR_TOKEN_FILE
        if token_path.exists():
            token = token_path.read_text().strip()
            try:
                operator = authority.verify(token)
            except Unauthenticated as exc:
                raise ConfigError(
                    f"{token_path} does not hold a token of this server's key ({exc}); if the "
                    f"key was replaced on purpose, delete {token_path} to make a new operator"
                ) from None
            _tighten(token_path)
        else:
            operator = Identity.random()
            token = authority.issue(operator)
            write_secret_durably(token_path, (token + "\n").encode())
        return cls(directory, operator, token, _read_grants(directory / GRANTS_FILE))

    def has(self, identity: Identity, right: str) -> bool:
        """Whether ``identity`` holds ``right`` (the operator holds every right)."""
        check_right(right)
        return identity == self.operator or identity in self._granted[right]

    def rights_of(self, identity: Identity) -> list[str]:
        """The rights ``identity`` holds, in ``ALL_RIGHTS`` order."""
        return [right for right in ALL_RIGHTS if self.has(identity, right)]

    def require_deploy(self, caller: Identity, action: str) -> None:
        """Refuse ``action`` (e.g. "create database 'shop'") unless ``caller`` may deploy.

        Raises:
            Unauthenticated: no token (anonymous callers never deploy).
            PermissionDenied: a token without the right; the message names the right,
                the caller and the operator's command that grants it.
        """
        if caller == ANONYMOUS:
            raise Unauthenticated(
                f"to {action} you need a token with the right to deploy; get an identity "
                f"(POST /v1/identity) and ask the server's operator to grant it the right"
            )
        if self.has(caller, DEPLOY):
            return
        raise PermissionDenied(
            f"identity {caller.hex()} may not {action}: that needs the right to deploy, "
            f"because Python modules run with the server's rights ({SECURITY_GUIDE}); "
            f"the server's operator grants it with: cosmictron-cli grant deploy {caller.hex()}"
        )

    def require_deploy_of(
        self, caller: Identity, action: str, sandboxed: bool, open_sandboxed: bool
    ) -> None:
        """``require_deploy``, except that with the server option ``open_sandboxed``
        (``--open-sandboxed-deploys``) any identity with a token may deploy a sandboxed
        module (WASM, JavaScript). Python modules still need the right.

        Raises:
            Unauthenticated, PermissionDenied: as ``require_deploy``; the message says
                which modules the caller may deploy.
        """
        if open_sandboxed and sandboxed and caller != ANONYMOUS:
            return
        if open_sandboxed and caller != ANONYMOUS and not self.has(caller, DEPLOY):
            raise PermissionDenied(
                f"identity {caller.hex()} may not {action} with a Python module: this server "
                f"lets every identity deploy sandboxed (WASM, JavaScript) modules, but "
                f"Python modules run with the server's rights and need the right to deploy "
                f"({SECURITY_GUIDE}); "
                f"the server's operator grants it with: cosmictron-cli grant deploy "
                f"{caller.hex()}"
            )
        self.require_deploy(caller, action)

    def require_operator(self, caller: Identity, action: str) -> None:
        """Refuse ``action`` unless ``caller`` is the operator.

        Raises:
            PermissionDenied: anyone else, anonymous included; the message says where the
                operator's token is kept.
        """
        if caller != self.operator:
            raise PermissionDenied(
                f"only the server's operator may {action}; the operator's token is in "
                f"<data-dir>/server/{OPERATOR_TOKEN_FILE} and is saved in the CLI settings "
                f"of the user who ran cosmictron-cli start"
            )

    def granted(self, right: str) -> list[Identity]:
        """The identities granted ``right``, sorted (the operator is not listed)."""
        check_right(right)
        return sorted(self._granted[right], key=Identity.hex)

    def grant(self, right: str, identity: Identity) -> bool:
        """Grant ``right`` to ``identity``, durably. Blocking.

        Returns:
            Whether anything changed (False: it already held the right).

        Raises:
            InvalidRequest: an unknown right, or the anonymous identity.
        """
        check_right(right)
        if identity == ANONYMOUS:
            raise InvalidRequest("the anonymous identity (all zeros) cannot be granted rights")
        if identity == self.operator:
            return False
        return self._change(right, self._granted[right] | {identity})

    def revoke(self, right: str, identity: Identity) -> bool:
        """Take ``right`` from ``identity``, durably. Blocking.

        Returns:
            Whether anything changed (False: it did not hold the right).

        Raises:
            InvalidRequest: an unknown right, or the operator (who always holds it).
        """
        check_right(right)
        if identity == self.operator:
            raise InvalidRequest(
                f"the operator always has the right to {right}; it cannot be revoked"
            )
        return self._change(right, self._granted[right] - {identity})

    def adopt_grants(self, grants: Mapping[str, Iterable[str]]) -> None:
        """Hold the cluster's ``grants`` (right -> identities in hex) from now on.

        Called when a node joins and by the watch on the cluster's grants (on the NATS
        thread: memory only, the file follows at this node's next change or start).
        """
        self._granted = {
            right: frozenset(Identity.from_hex(text) for text in grants.get(right, ()))
            for right in ALL_RIGHTS
        }

    def _change(self, right: str, wanted: frozenset[Identity]) -> bool:
        if self.shared is not None:
            return self._change_shared(right, wanted)
        with self._changes:
            if wanted == self._granted[right]:
                return False
            updated = {**self._granted, right: wanted}
            document = {
                "version": GRANTS_FORMAT_VERSION,
                "grants": {name: sorted(i.hex() for i in held) for name, held in updated.items()},
            }
            text = json.dumps(document, indent=2, sort_keys=True) + "\n"
            write_secret_durably(self.directory / GRANTS_FILE, text.encode())
            self._granted = updated
            return True

    def _change_shared(self, right: str, wanted: frozenset[Identity]) -> bool:
        """Cluster mode: the change goes to the cluster's grants first (every node's watch
        then applies it), then to this node's file."""
        assert self.shared is not None
        with self._changes:
            changed = self._granted[right] ^ wanted
            if not changed:
                return False
            (identity,) = changed  # grant and revoke change one identity
            self.adopt_grants(self.shared(right, identity.hex(), identity in wanted))
            document = {
                "version": GRANTS_FORMAT_VERSION,
                "grants": {n: sorted(i.hex() for i in held) for n, held in self._granted.items()},
            }
            text = json.dumps(document, indent=2, sort_keys=True) + "\n"
            write_secret_durably(self.directory / GRANTS_FILE, text.encode())
            return True


def share_with_cluster(rights: Rights, connection: Any, replicas: int) -> None:
    """Cluster mode: hold the cluster's grants, change them cluster-wide, follow changes
    made on other nodes (``cluster/keys.py``). Blocking; at start."""
    from cosmictron.cluster.keys import change_grant, share_grants, watch_grants

    local = {right: [i.hex() for i in rights.granted(right)] for right in ALL_RIGHTS}
    rights.adopt_grants(share_grants(connection, local, replicas=replicas))
    rights.shared = lambda right, identity, held: change_grant(
        connection, right, identity, held, replicas=replicas
    )
    watch_grants(connection, rights.adopt_grants, replicas=replicas)


def check_right(right: str) -> None:
    """Raises InvalidRequest naming the known rights when ``right`` is not one."""
    if right not in ALL_RIGHTS:
        raise InvalidRequest(f"no right called {right!r} (rights: {', '.join(ALL_RIGHTS)})")


def parse_identity(text: str) -> Identity:
    """An identity from its 64 hex digits, or InvalidRequest saying what was wrong."""
    return Identity.from_hex(names.check_identity_hex(text))


def write_secret_durably(path: Path, data: bytes) -> None:
    """Write ``path`` whole with mode 0600, so that after a crash it is old or new.

    Like ``durability.files.write_file_durably`` but with the mode given to ``open``
    rather than through the process-wide umask, which other threads' files would share.
    """
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # a leftover .tmp keeps its old mode otherwise
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _tighten(path: Path) -> None:
    """Make a secret file 0600 if someone loosened it."""
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def _read_grants(path: Path) -> dict[str, frozenset[Identity]]:
    if not path.exists():
        return {}
    _tighten(path)
    try:
        document = json.loads(path.read_text())
        if document.get("version") != GRANTS_FORMAT_VERSION:
            raise ValueError(f"version {document.get('version')!r} is not one this server reads")
        grants = document["grants"]
        unknown = sorted(set(grants) - set(ALL_RIGHTS))
        if unknown:
            raise ValueError(f"unknown rights {unknown}")
        return {
            right: frozenset(Identity.from_hex(text) for text in held)
            for right, held in grants.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is not a grants file this server reads: {exc}") from None
