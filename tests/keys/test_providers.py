"""KEK providers: local files (mode 0600), environment, a PKCS#11 token (SoftHSM2); sealed start."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.config import Settings
from app.keys.fields import decrypt_field, encrypt_field
from app.keys.kek import EnvKeks, KekUnavailable, LocalKeks, load_kek
from app.main import create_app
from app.runtime import open_runtime
from tests.server import LiveServer
from tests.tokens import make_token

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def round_trip(settings: Settings) -> None:
    runtime = open_runtime(settings)
    try:
        assert runtime.keyring is not None, runtime.key_problems
        with runtime.session_factory() as session:
            token = encrypt_field(session, runtime.keyring, subject_id="s", field="f",
                                  value="13812345678")
            session.commit()
            assert decrypt_field(session, runtime.keyring, subject_id="s", field="f",
                                 token=token) == "13812345678"
    finally:
        runtime.close()


def test_local_key_file_is_made_in_dev_with_mode_0600(settings: Settings) -> None:
    round_trip(settings)
    key_file = settings.data_dir / "kek" / "kek-v1.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_bytes()) == 32


def test_local_provider_never_creates_keys_in_prod(tmp_path: Path) -> None:
    with pytest.raises(KekUnavailable, match="no KEK file"):
        LocalKeks(tmp_path / "kek", create=False)


def test_local_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    LocalKeks(tmp_path / "kek", create=True)
    (tmp_path / "kek" / "kek-v1.key").chmod(0o644)
    with pytest.raises(KekUnavailable, match="chmod 600"):
        LocalKeks(tmp_path / "kek", create=False)


def test_env_provider(make_settings: Callable[..., Settings]) -> None:
    one, two = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    assert EnvKeks(one).versions() == [1]
    assert EnvKeks(f"1:{one},2:{two}").versions() == [1, 2]
    round_trip(make_settings(kek_provider="env", kek=f"1:{one},2:{two}"))
    for bad in ("", "not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(KekUnavailable):
            EnvKeks(bad)


def test_unknown_provider_is_named(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(KekUnavailable, match="vault"):
        load_kek(make_settings(kek_provider="vault"))


def test_sealed_start(make_settings: Callable[..., Settings],
                      start_server: Callable[..., LiveServer]) -> None:
    server = start_server(create_app(make_settings(kek_provider="env")))  # no PGW_KEK
    ready = server.client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "sealed"
    assert "PGW_KEK" in ready.json()["reasons"][0]
    response = server.client(make_token(scope="keys:admin")).get("/v1/keys/status")
    assert response.status_code == 503
    assert response.json()["type"] == "urn:pgw:problem:sealed"
    assert server.client().get("/healthz").status_code == 200  # alive, just sealed


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not (shutil.which("softhsm2-util") and Path(SOFTHSM_MODULE).exists()):
        if os.environ.get("CI"):
            pytest.fail("SoftHSM2 is not installed; .ci/run installs it")
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    pytest.importorskip("pkcs11")
    home = tmp_path_factory.mktemp("softhsm")
    (home / "tokens").mkdir()
    conf = home / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read when the PKCS#11 library first loads
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "pgw-test",
                    "--pin", "4321", "--so-pin", "8765"], check=True, capture_output=True)
    return {"pkcs11_module": SOFTHSM_MODULE, "pkcs11_token_label": "pgw-test",
            "pkcs11_pin": "4321"}


def test_pkcs11_provider_against_softhsm(make_settings: Callable[..., Settings],
                                         softhsm: dict[str, str]) -> None:
    settings = make_settings(kek_provider="pkcs11", **softhsm)
    provider = load_kek(settings)
    assert provider.name == "pkcs11"
    assert provider.versions() == [1]
    wrapped = provider.wrap(1, b"k" * 32, b"aad")
    assert b"k" * 32 not in wrapped
    assert provider.unwrap(1, wrapped, b"aad") == b"k" * 32
    with pytest.raises(ValueError, match="authenticate"):
        provider.unwrap(1, wrapped, b"another subject")
    assert provider.create_version() == 2
    assert provider.unwrap(2, provider.wrap(2, b"x" * 16, b"a"), b"a") == b"x" * 16
    round_trip(settings)


def test_pkcs11_wrong_pin_starts_sealed(settings: Settings, softhsm: dict[str, str]) -> None:
    # A fresh process: PKCS#11 logins are per process, and this one is already logged in.
    code = ("from app.config import Settings; from app.runtime import open_runtime; "
            "r = open_runtime(Settings()); print(r.sealed); print(r.key_problems[0])")
    env = {**os.environ, "PGW_KEK_PROVIDER": "pkcs11", "PGW_PKCS11_MODULE": SOFTHSM_MODULE,
           "PGW_PKCS11_TOKEN_LABEL": "pgw-test", "PGW_PKCS11_PIN": "0000",
           "PGW_DATA_DIR": str(settings.data_dir), "PGW_DATABASE_URL": settings.sqlalchemy_url,
           "PGW_POLICY_DIR": str(settings.policy_dir)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    sealed, problem = result.stdout.splitlines()[-2:]
    assert sealed == "True"
    assert "PKCS#11 token 'pgw-test' unavailable (PinIncorrect)" in problem
    assert "0000" not in problem


def test_a_process_without_a_version_in_use_is_not_ready_and_says_which(
        settings: Settings, make_settings: Callable[..., Settings]) -> None:
    """After a rotation to version 2, a process given only version 1 (PGW_KEK not updated)
    keeps reading what it can and names what it lacks; once given version 2 it matches."""
    from app.auth.guard import Caller
    from app.keys import rotation

    local = open_runtime(settings)
    assert local.keyring is not None
    round_trip(settings)
    v1 = base64.b64encode((settings.data_dir / "kek" / "kek-v1.key").read_bytes()).decode()
    rotation.run_kek_rotation(local.session_factory, local.keyring,
                              caller=Caller.system("test"))
    v2 = base64.b64encode((settings.data_dir / "kek" / "kek-v2.key").read_bytes()).decode()
    local.close()
    lacking = open_runtime(make_settings(kek_provider="env", kek=f"1:{v1}"))
    try:
        assert lacking.sync_keys() == ["KEK version 2 is in use but not available to this "
                                       "process"]
        assert not lacking.sealed  # what is wrapped under version 1 still opens
    finally:
        lacking.close()
    wrong = base64.b64encode(os.urandom(32)).decode()
    mistyped = open_runtime(make_settings(kek_provider="env", kek=f"1:{v1},2:{wrong}"))
    try:
        assert mistyped.sealed
        assert mistyped.sync_keys()[0].startswith("KEK version 2 does not match")
    finally:
        mistyped.close()
    complete = open_runtime(make_settings(kek_provider="env", kek=f"1:{v1},2:{v2}"))
    try:
        assert complete.sync_keys() == []
    finally:
        complete.close()
