"""A real RFC 3161 TSA for the tests: OpenSSL's ``openssl ts -reply`` behind a local HTTP server.

Built once per session in a temp directory (recipe: shared/reference/local-tsa.sh):

- ``ca.pem``: the trust root; ``tsa.pem``: a TSA certificate it issued, with the
  critical ``timeStamping``-only EKU RFC 3161 §2.3 demands;
- ``other-ca.pem`` / ``other-tsa.pem``: a second, untrusted CA and its TSA;
- ``noeku.pem``: a certificate the trusted CA issued without any EKU (``openssl ts``
  refuses to sign with it, so a token "from" it is made with ``openssl cms``).

The server answers ``POST /`` (trusted TSA), ``POST /other`` (untrusted TSA) and
``POST /sha1`` (the trusted TSA naming its certificate by a SHA-1 ``ESSCertID``) with
``openssl ts -reply`` output, ``/down`` with HTTP 503, ``/garbage`` with bytes that are
not a response. Requests to one TSA are serialised: its serial file is read-modify-write.
"""

from __future__ import annotations

import dataclasses
import http.server
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

TSA_POLICY = "1.3.6.1.4.1.99999.1.1"
OTHER_POLICY = "1.3.6.1.4.1.99999.1.2"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "3650",
        "-sha256", "-subj", f"/O=Cosmictron Test/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash", cwd=d,
    )  # fmt: skip


def _make_leaf(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}_ext.cnf").write_text(ext)
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/O=Cosmictron Test/CN={name}",
        cwd=d,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "825", "-sha256",
        "-extfile", f"{name}_ext.cnf", cwd=d,
    )  # fmt: skip


TSA_EXT = """basicConstraints       = critical,CA:FALSE
keyUsage               = critical,digitalSignature,nonRepudiation
extendedKeyUsage       = critical,timeStamping
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
"""
NO_EKU_EXT = """basicConstraints       = critical,CA:FALSE
keyUsage               = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
"""


def _reply_config(
    d: Path, name: str, policy: str, *, signer: str = "", ess: str = "sha256"
) -> Path:
    signer = signer or name
    (d / f"{name}.serial").write_text("01\n")
    config = d / f"{name}.cnf"
    config.write_text(
        f"""[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir                    = {d}
serial                 = $dir/{name}.serial
crypto_device          = builtin
signer_cert            = $dir/{signer}.pem
signer_key             = $dir/{signer}.key
signer_digest          = sha256
default_policy         = {policy}
other_policies         = 1.3.6.1.4.1.99999.1.3
digests                = sha256, sha384, sha512
accuracy               = secs:1
clock_precision_digits = 0
ordering               = no
tsa_name               = yes
ess_cert_id_chain      = no
ess_cert_id_alg        = {ess}
"""
    )
    return config


@dataclasses.dataclass
class LocalTsa:
    """The running TSA: where its files are, its URLs, and how to run openssl there."""

    dir: Path
    url: str
    other_url: str
    down_url: str
    garbage_url: str
    sha1_url: str

    def path(self, name: str) -> Path:
        return self.dir / name

    def openssl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``openssl`` in the TSA's directory; return the result without raising."""
        return subprocess.run(
            ["openssl", *args], cwd=self.dir, capture_output=True, text=True, check=False
        )


class _Handler(http.server.BaseHTTPRequestHandler):
    tsa_dir: Path
    locks: dict[str, threading.Lock]

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/down":
            self._reply(503, b"TSA down for maintenance", "text/plain")
            return
        if self.path == "/garbage":
            self._reply(200, b"\x30\x03\x02\x01", "application/timestamp-reply")
            return
        name = {"/": "tsa", "/other": "other-tsa", "/sha1": "sha1-tsa"}.get(self.path)
        if name is None or self.headers.get("Content-Type") != "application/timestamp-query":
            self._reply(400, b"bad request", "text/plain")
            return
        with self.locks[name], tempfile.TemporaryDirectory(dir=self.tsa_dir) as work:
            query, reply = Path(work) / "q.tsq", Path(work) / "r.tsr"
            query.write_bytes(body)
            subprocess.run(
                ["openssl", "ts", "-reply", "-config", f"{name}.cnf", "-queryfile", str(query),
                 "-out", str(reply)],
                cwd=self.tsa_dir, check=True, capture_output=True,
            )  # fmt: skip
            self._reply(200, reply.read_bytes(), "application/timestamp-reply")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def local_tsa() -> Iterator[LocalTsa]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (scripts/test installs it)")
    d = Path(tempfile.mkdtemp(prefix="cosmictron-tsa-"))
    try:
        _make_ca(d, "ca")
        _make_leaf(d, "tsa", "ca", TSA_EXT)
        _make_leaf(d, "noeku", "ca", NO_EKU_EXT)
        _make_ca(d, "other-ca")
        _make_leaf(d, "other-tsa", "other-ca", TSA_EXT)
        _reply_config(d, "tsa", TSA_POLICY)
        _reply_config(d, "other-tsa", OTHER_POLICY)
        _reply_config(d, "sha1-tsa", TSA_POLICY, signer="tsa", ess="sha1")  # ESSCertID v1
        handler = type(
            "Handler",
            (_Handler,),
            {
                "tsa_dir": d,
                "locks": {name: threading.Lock() for name in ("tsa", "other-tsa", "sha1-tsa")},
            },
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield LocalTsa(
                d, base + "/", base + "/other", base + "/down", base + "/garbage", base + "/sha1"
            )
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    finally:
        shutil.rmtree(d, ignore_errors=True)
