"""Feature-cache entries are proven, not trusted (nc_audit/io/guards/cache_proof.py, nc_audit/measurement/cache.py).

An entry is reused only when its proof is signed with this user's key (kept outside the cache) for this
checkpoint, data and settings, and the dump's bytes are the ones signed. An unproven entry outside the
user's own cache is ignored and left as it is; the features come from the user's own cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import mlp_checkpoint

from nc_audit.core.errors import InputError
from nc_audit.io.guards.cache_proof import file_digest, key_path, load_key, proof_path, verify
from nc_audit.measurement.api import measure
from nc_audit.measurement.cache import clear_cache
from nc_audit.report.model import Report


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "GITHUB_STEP_SUMMARY", "NC_AUDIT_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "own"))
    monkeypatch.setenv("NC_AUDIT_CACHE_KEY", str(tmp_path / "keys" / "cache.key"))


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return mlp_checkpoint(tmp_path / "m.pt", hidden=[16])


def _measure(checkpoint: Path, cache: Path | None = None) -> Report:
    return measure(checkpoint, data="digits", cache_dir=cache, device="cpu")


def _collapse(entry: Path) -> None:
    """Replace the entry's features by 3·w_y: a dump at Neural Collapse (what an attacker plants)."""
    with h5py.File(entry, "r+") as handle:
        weight = handle["head/weight"][...]
        for split in ("train", "test"):
            labels = handle[f"{split}/labels"][...]
            handle[f"{split}/features"][...] = 3.0 * weight[labels]


# --- the key ------------------------------------------------------------------------------------------------
def test_the_key_is_made_once_private_and_outside_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = load_key(tmp_path / "own")
    path = key_path()
    assert path == tmp_path / "keys" / "cache.key" and len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key() == key  # read back, not remade
    monkeypatch.delenv("NC_AUDIT_CACHE_KEY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert key_path() == tmp_path / "config" / "nc-audit" / "cache.key"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert key_path() == tmp_path / "home" / ".config" / "nc-audit" / "cache.key"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_key_readable_by_others_or_inside_the_cache_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_key()
    key_path().chmod(0o644)
    with pytest.raises(InputError, match=r"cache\.key: the feature cache key is not private"):
        load_key()
    monkeypatch.setenv("NC_AUDIT_CACHE_KEY", str(tmp_path / "own" / "cache.key"))
    with pytest.raises(InputError, match=r"lies inside the cache folder"):
        load_key(tmp_path / "own")


# --- entries -------------------------------------------------------------------------------------------------
def test_an_entry_is_written_with_a_proof_and_reused_only_while_its_bytes_are_unchanged(
    checkpoint: Path, tmp_path: Path
) -> None:
    first = _measure(checkpoint)
    entry = Path(first.details["feature_cache"]["path"])
    assert entry.parent == tmp_path / "own" and proof_path(entry).is_file()
    assert _measure(checkpoint).details["feature_cache"]["hit"] is True

    _collapse(entry)  # the user's own cache, changed behind nc-audit's back
    again = _measure(checkpoint)
    assert again.details["feature_cache"]["hit"] is False
    assert any("bytes changed" in note and "rebuilt" in note for note in again.notes)
    assert again.metrics["nc1"] == pytest.approx(first.metrics["nc1"])


@pytest.mark.parametrize("how", ["no proof", "another user's key", "another entry's proof"])
def test_an_unproven_entry_outside_the_own_cache_is_ignored_left_alone_and_not_measured(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A project's cache folder holds a collapsed dump at the right name: the real metrics are measured."""
    project = tmp_path / "project-cache"
    real = _measure(checkpoint, project)  # a genuine entry, then tampered into a planted one
    entry = Path(real.details["feature_cache"]["path"])
    _collapse(entry)
    if how == "no proof":
        proof_path(entry).unlink()
        with h5py.File(entry, "r+") as handle:  # every attribute deleted
            for key in list(handle.attrs):
                del handle.attrs[key]
    elif how == "another user's key":
        monkeypatch.setenv("NC_AUDIT_CACHE_KEY", str(tmp_path / "other-user" / "cache.key"))
        from nc_audit.io.guards.cache_proof import write_proof
        from nc_audit.measurement.cache import entry_fields

        attrs_sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        fields = entry_fields(entry, attrs_sha, "digits:layout=flat", ["train", "test"])
        write_proof(entry, load_key(), fields)  # signed, but with the other user's key
        monkeypatch.setenv("NC_AUDIT_CACHE_KEY", str(tmp_path / "keys" / "cache.key"))
    else:
        decoy = _measure(
            mlp_checkpoint(tmp_path / "other.pt", hidden=[16], seed=1), tmp_path / "decoy"
        )  # a real proof, of another folder
        shutil.copyfile(proof_path(Path(decoy.details["feature_cache"]["path"])), proof_path(entry))
        os.utime(entry)
    planted = file_digest(entry)

    report = _measure(checkpoint, project)

    assert file_digest(entry) == planted  # left as it is
    assert Path(report.details["feature_cache"]["path"]).parent == tmp_path / "own"
    assert report.metrics["nc1"] == pytest.approx(real.metrics["nc1"])
    assert any(str(entry) in note and "ignored" in note for note in report.notes)


def test_verify_says_why(checkpoint: Path, tmp_path: Path) -> None:
    entry = Path(_measure(checkpoint).details["feature_cache"]["path"])
    assert verify(entry, None, {}).why == "no cache key to check it with"
    assert not verify(entry, load_key(), {"entry": "other"}).signed


def test_clear_removes_dumps_with_their_proofs(checkpoint: Path, tmp_path: Path) -> None:
    entry = Path(_measure(checkpoint).details["feature_cache"]["path"])
    orphan = entry.with_name("0" * 12 + "-" + "1" * 20 + ".h5.proof")
    orphan.write_text("{}")
    removed = clear_cache(tmp_path / "own", now=time.time())
    assert [item.path for item in removed] == [entry]
    assert not entry.exists() and not proof_path(entry).exists() and not orphan.exists()


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    data = np.random.default_rng(0).bytes(3 << 20)
    path.write_bytes(data)
    assert file_digest(path) == (hashlib.sha256(data).hexdigest(), len(data))
    os.symlink(path, tmp_path / "link")
    with pytest.raises(OSError):
        file_digest(tmp_path / "link")


def test_a_problem_of_the_data_names_the_users_file_not_the_cache_dump(
    checkpoint: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "one.npz", inputs=rng.normal(size=(30, 64)).astype(np.float32), labels=np.zeros(30, int)
    )
    with pytest.raises(
        InputError, match=r"^one\.npz \[train\]: only 1 class.*extracted into the cache entry \w{12}-"
    ):
        measure(checkpoint, data="one.npz", device="cpu")
