"""Proof that a feature-cache entry was written by this user's nc-audit, for what it claims to hold.

A cache folder may come from a project's ``pyproject.toml`` (a pull request's own folder), be shared,
or hold a file copied from another machine, so an entry is never trusted by its name or attributes.
When nc-audit writes an entry it records, in a sidecar ``<entry>.proof`` (JSON), the entry's key
fields (checkpoint sha256, dataset identity, splits, factory, head, factory arguments), the sha256 and
size of the dump's bytes, and an HMAC-SHA256 over all of them made with a per-user secret key. An
entry is reused only when the HMAC verifies with this user's key, the fields are the ones asked for,
and the dump's bytes still hash to the recorded digest (one streaming read of the file).

The key: 32 random bytes in ``$NC_AUDIT_CACHE_KEY`` (a file path, for tests), else
``$XDG_CONFIG_HOME/nc-audit/cache.key``, else ``~/.config/nc-audit/cache.key`` — never inside a cache
folder. It is created on first use with mode 0600 (written to a private temporary file, then linked
into place, so two runs never see half a key); a key that is not a regular file of this user, is
readable by others, or is not 32 bytes is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nc_audit.core.errors import InputError

KEY_BYTES = 32
PROOF_SUFFIX = ".proof"
PROOF_VERSION = 1
_MAX_PROOF_BYTES = 16 * 1024
_READ_BYTES = 1 << 20


def key_path() -> Path:
    """Where this user's cache key lives (see the module docstring)."""
    if os.environ.get("NC_AUDIT_CACHE_KEY"):
        return Path(os.environ["NC_AUDIT_CACHE_KEY"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nc-audit" / "cache.key"


def _read_key(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != KEY_BYTES:
            raise InputError(f"{path}: not a {KEY_BYTES}-byte file; delete it and nc-audit makes a new key")
        if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o077):
            raise InputError(
                f"{path}: the feature cache key is not private to you (owner or mode {oct(info.st_mode & 0o777)}); "
                "delete it and nc-audit makes a new one"
            )
        return os.read(fd, KEY_BYTES + 1)[:KEY_BYTES]
    finally:
        os.close(fd)


def _create_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another run made meanwhile
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def load_key(cache_dir: Path | None = None) -> bytes:
    """This user's cache key, created on first use. InputError (naming the key file) when it cannot be
    made or read, or lies inside ``cache_dir``."""
    path = key_path()
    if cache_dir is not None:
        folder = os.path.realpath(cache_dir)
        if os.path.realpath(path).startswith(folder.rstrip(os.sep) + os.sep):
            raise InputError(
                f"{path}: the feature cache key lies inside the cache folder {cache_dir}; "
                "set NC_AUDIT_CACHE_KEY to a file outside it"
            )
    try:
        try:
            return _read_key(path)
        except FileNotFoundError:
            _create_key(path)
            return _read_key(path)
    except OSError as error:
        raise InputError(
            f"{path}: cannot read or create the feature cache key ({error.strerror or error})"
        ) from None


def proof_path(entry: Path) -> Path:
    """The sidecar that proves ``entry``."""
    return entry.with_name(entry.name + PROOF_SUFFIX)


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 hex, size) of a regular file's bytes, read in 1 MiB blocks, a symlink never followed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        digest, size = hashlib.sha256(), 0
        while block := os.read(fd, _READ_BYTES):
            digest.update(block)
            size += len(block)
        return digest.hexdigest(), size
    finally:
        os.close(fd)


def _mac(key: bytes, fields: Mapping[str, str], digest: str, size: int) -> str:
    message = json.dumps(
        {"v": PROOF_VERSION, "fields": dict(sorted(fields.items())), "sha256": digest, "size": size},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def write_proof(entry: Path, key: bytes, fields: Mapping[str, str]) -> None:
    """Write the sidecar of ``entry`` as it is on disk now: a private temporary file renamed over the
    sidecar's name (a link planted there is replaced, never written through)."""
    text = proof_text(entry, key, fields)
    target = proof_path(entry)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def proof_text(entry: Path, key: bytes, fields: Mapping[str, str]) -> str:
    """The sidecar's JSON for the entry as it is on disk now."""
    digest, size = file_digest(entry)
    document = {
        "v": PROOF_VERSION,
        "fields": dict(fields),
        "sha256": digest,
        "size": size,
        "hmac": _mac(key, fields, digest, size),
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Verdict:
    """What the sidecar says of an entry: ``signed`` — the proof was made with this user's key for these
    fields (the entry name is nc-audit's own); ``proven`` — and the dump's bytes are the ones signed;
    ``why`` — the reason when not proven."""

    signed: bool
    proven: bool
    why: str


def _read_proof(path: Path) -> dict[str, object] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.read(fd, _MAX_PROOF_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_PROOF_BYTES:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def signed_proof(
    entry: Path, key: bytes, fields: Mapping[str, str] | None = None
) -> dict[str, object] | None:
    """The entry's sidecar when its HMAC verifies with ``key`` (and its fields are ``fields``, if given)."""
    document = _read_proof(proof_path(entry))
    if document is None:
        return None
    claimed, digest, size, mac = (document.get(k) for k in ("fields", "sha256", "size", "hmac"))
    if not (
        isinstance(claimed, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in claimed.items())
        and isinstance(digest, str)
        and isinstance(size, int)
        and isinstance(mac, str)
    ):
        return None
    if not hmac.compare_digest(_mac(key, claimed, digest, size), mac):
        return None
    if fields is not None and dict(claimed) != dict(fields):
        return None
    return document


def verify(entry: Path, key: bytes | None, fields: Mapping[str, str]) -> Verdict:
    """Whether ``entry`` is proven (see the module docstring); the dump is hashed only when signed."""
    if key is None:
        return Verdict(False, False, "no cache key to check it with")
    document = signed_proof(entry, key, fields)
    if document is None:
        if not os.path.lexists(proof_path(entry)):
            return Verdict(False, False, "no proof that your nc-audit wrote it")
        return Verdict(False, False, "its proof was not made by your nc-audit for this checkpoint and data")
    try:
        digest, size = file_digest(entry)
    except OSError:
        return Verdict(True, False, "not a regular file")
    if size != document["size"] or not hmac.compare_digest(digest, str(document["sha256"])):
        return Verdict(True, False, "its bytes changed since nc-audit wrote it")
    return Verdict(True, True, "")
