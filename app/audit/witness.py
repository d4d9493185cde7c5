"""`pgw audit witness`: a process outside the gateway's database that co-signs checkpoints.

It keeps the last checkpoint it co-signed in a directory of its own, with its own Ed25519 key.
For each new checkpoint it checks the log's signature, then that the new tree extends the one it
saw last (an RFC 9162 consistency proof fetched from the gateway), and only then co-signs it
(C2SP tlog-cosignature: the time of co-signing is signed too) and stores it. A smaller tree (a
truncated log), the same size with another root, a failed proof (a rewritten log) or a larger
signed tree the gateway cannot prove is refused: nothing is co-signed, the refusal is kept beside
the state, and the witness exits non-zero in `--once` mode. Auditors take their checkpoints from
the witness's directory and check its co-signature (`verify_audit.py --witness NAME=PEM`): the
gateway alone cannot then show them a log of its own making.

What the witness vouches for is the tree: an entry row edited in place, tree untouched, is found
by verification and by inclusion proofs, not by the witness.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.audit import verifier
from app.keys.signing import Signer, load_signer

MAX_RESPONSE = 1 << 20
logger = logging.getLogger("pgw.audit.witness")


class Refused(Exception):
    """The log's new checkpoint is not an append-only extension of the one witnessed before."""

    def __init__(self, reason: str, checkpoint: str = "") -> None:
        super().__init__(reason)
        self.checkpoint = checkpoint  # the refused note, as the gateway served it


@dataclass(frozen=True)
class Witness:
    name: str
    signer: Signer
    log_key: Ed25519PublicKey
    state_dir: Path
    url: str
    token: str

    @property
    def latest_path(self) -> Path:
        return self.state_dir / "checkpoint"

    def last_seen(self) -> verifier.Note | None:
        if not self.latest_path.exists():
            return None
        return verifier.parse_note(self.latest_path.read_text(encoding="utf-8"))

    def _get(self, path: str, **params: int) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(  # noqa: S310 - the operator's own gateway URL
            f"{self.url.rstrip('/')}{path}{query}",
            headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            body: bytes = response.read(MAX_RESPONSE + 1)
        if len(body) > MAX_RESPONSE:
            raise ValueError(f"the gateway's answer to {path} is larger than expected")
        return body

    def observe(self) -> verifier.Note:
        """Fetch the latest checkpoint, check it, co-sign and store it; returns it."""
        text = self._get("/v1/audit/checkpoint").decode()
        new = verifier.parse_note(text)
        try:
            if not verifier.any_signature_by(new, self.log_key):
                raise Refused("the checkpoint is not signed by the log's key")
            old = self.last_seen()
            if old is not None:
                self._check_extends(old, new)
        except Refused as exc:
            raise Refused(str(exc), text) from None
        return self._cosign(new)

    def _check_extends(self, old: verifier.Note, new: verifier.Note) -> None:
        if new.origin != old.origin:
            raise Refused(f"the checkpoint is of another log ({new.origin!r}, "
                          f"not {old.origin!r})")
        if new.size < old.size:
            raise Refused(f"the log shrank from {old.size} to {new.size} entries: it was "
                          "truncated or rewritten")
        if new.size == old.size:
            if new.root != old.root:
                raise Refused(f"two different trees of {new.size} entries: the log was "
                              "rewritten")
            return
        try:
            document = json.loads(self._get("/v1/audit/consistency", from_size=old.size,
                                            to_size=new.size))
            proof = [bytes.fromhex(h) for h in document["proof"]]
        except urllib.error.HTTPError as exc:
            raise Refused(f"the log signed a tree of {new.size} entries but cannot prove it "
                          f"extends the one of {old.size} witnessed before (HTTP {exc.code})"
                          ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise Refused(f"the consistency proof from {old.size} to {new.size} is malformed: "
                          f"{exc}") from None
        if not verifier.verify_consistency(old.size, new.size, old.root, new.root, proof):
            raise Refused(f"the tree of {new.size} entries does not extend the one of "
                          f"{old.size} witnessed before: the log was rewritten")

    def _cosign(self, note: verifier.Note) -> verifier.Note:
        timestamp = int(time.time())
        signature = self.signer.private_key.sign(
            verifier.cosignature_message(note.body, timestamp))
        # only the log's own signature line, verified above, is kept beside ours
        lines = [f"\u2014 {name} {base64.b64encode(blob).decode()}\n"
                 for name, blob in note.signatures
                 if verifier.note_signed_by(note, name, self.log_key)]
        lines.append(verifier.cosignature_line(self.name, self.signer.public_key, timestamp,
                                               signature))
        text = note.body + "\n" + "".join(lines)
        _write(self.latest_path, text.encode())
        history = self.state_dir / "checkpoints"
        history.mkdir(mode=0o700, exist_ok=True)
        _write(history / f"{note.size:012d}.note", text.encode())
        return verifier.parse_note(text)

    def refuse(self, refusal: Refused) -> None:
        """Keep the evidence of a refusal, once per refused checkpoint: a refusal that lasts is
        seen again at every poll, and would otherwise fill the directory."""
        last = self.state_dir / LAST_REFUSED_FILE
        if refusal.checkpoint and last.exists() and \
                last.read_text(encoding="utf-8") == refusal.checkpoint:
            logger.info("witness still refuses the checkpoint it refused before: %s", refusal)
            return
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        _write(self.state_dir / f"refused-{stamp}.txt",
               f"{refusal}\n\n{refusal.checkpoint}".encode())
        _write(last, refusal.checkpoint.encode())
        logger.error("witness refused a checkpoint: %s", refusal)


def _write(path: Path, data: bytes) -> None:
    """Replace `path` atomically (mode 0600), so a crash leaves the old state or the new."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


PUBLIC_KEY_FILE = "witness-public.pem"  # in the state directory: what auditors' --witness takes
LAST_REFUSED_FILE = "last-refused.note"  # the checkpoint of the latest refusal kept


def open_witness(*, name: str, key_file: Path, log_key: Ed25519PublicKey, state_dir: Path,
                 url: str, token: str) -> Witness:
    """The witness, its key made if missing; its public key is written beside its state."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    signer = load_signer(key_file, create=True)
    public = state_dir / PUBLIC_KEY_FILE
    if not public.exists() or public.read_text(encoding="utf-8") != signer.public_pem():
        public.write_text(signer.public_pem(), encoding="utf-8")
    return Witness(name=name, signer=signer, log_key=log_key, state_dir=state_dir, url=url,
                   token=token)


def _unreachable(exc: Exception) -> str:
    """Why the gateway could not be read, with its own problem detail when it gave one."""
    if isinstance(exc, urllib.error.HTTPError):
        try:
            detail = json.loads(exc.read(4096)).get("detail")
        except (ValueError, AttributeError, OSError):
            detail = None
        return f"HTTP {exc.code}" + (f": {str(detail)[:300]}" if detail else "")
    return str(exc)


def run(witness: Witness, *, once: bool, interval: float) -> int:
    """Observe every `interval` seconds (or once); 1 if a checkpoint was refused."""
    refused = False
    last = witness.last_seen()
    size = last.size if last is not None else None
    while True:
        try:
            note = witness.observe()
            if note.size != size:  # a poll that found nothing new is not news
                logger.info("witnessed checkpoint", extra={"size": note.size})
            size = note.size
        except Refused as exc:
            witness.refuse(exc)
            refused = True
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            logger.warning("could not reach or read the gateway: %s", _unreachable(exc))
            if once:
                return 2
        if once:
            return 1 if refused else 0
        time.sleep(interval)
