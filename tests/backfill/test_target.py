"""Where the credentials and the project come from: the app's own variables as they are
(split FIREBASE_* service account), checked offline with a key generated here."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backfill.errors import ConfigurationError
from backfill.target import make_client, resolve_target
from tests.conftest import REPO
from tests.helpers import dead_address

EMAIL = "wardrobe-backend@wardrobe-prod.iam.gserviceaccount.com"


def app_variables(pem: str, *, style: str = "escaped") -> dict[str, str]:
    """The app's split variables, as a hosting console holds them."""
    key = {"escaped": pem.replace("\n", "\\n"),
           "quoted": '"' + pem.replace("\n", "\\n") + '"',
           "crlf": pem.replace("\n", "\\r\\n").replace("\\r", "\r"),
           "newlines": pem}[style]
    return {
        "FIREBASE_PROJECT_ID": "wardrobe-prod",
        "FIREBASE_PRIVATE_KEY": key,
        "FIREBASE_CLIENT_EMAIL": EMAIL,
        "FIREBASE_PRIVATE_KEY_ID": "0123456789abcdef",
        "FIREBASE_CLIENT_ID": "109876543210",
        "FIREBASE_CLIENT_X509_CERT_URL": "https://example.invalid/cert",
    }


def resolve(env: dict[str, str], project: str | None = None) -> object:
    return resolve_target(environment="production", project=project, database="(default)",
                          collection="wardrobe", env=env)


@pytest.mark.parametrize("style", ["escaped", "quoted", "crlf", "newlines"])
def test_the_apps_split_variables_build_a_client_offline(private_key: str, style: str) -> None:
    target = resolve_target(environment="production", project=None, database="(default)",
                            collection="wardrobe", env=app_variables(private_key, style=style))
    client = make_client(target)  # builds credentials and a client; no network is used
    assert client.project == "wardrobe-prod"
    assert client._credentials.service_account_email == EMAIL
    assert target.credentials_source == (
        "variables FIREBASE_PRIVATE_KEY, FIREBASE_CLIENT_EMAIL, FIREBASE_PRIVATE_KEY_ID, "
        "FIREBASE_CLIENT_ID, FIREBASE_CLIENT_X509_CERT_URL")
    assert target.project_source == "variable FIREBASE_PROJECT_ID"
    assert "PRIVATE KEY" not in repr(target) and "PRIVATE KEY" not in target.describe()


@pytest.mark.parametrize(("drop", "message"), [
    (["FIREBASE_CLIENT_EMAIL"], "FIREBASE_PRIVATE_KEY, FIREBASE_PRIVATE_KEY_ID, "
     "FIREBASE_CLIENT_ID, FIREBASE_CLIENT_X509_CERT_URL are set, but FIREBASE_CLIENT_EMAIL "
     "is not"),
    (["FIREBASE_PRIVATE_KEY", "FIREBASE_PRIVATE_KEY_ID", "FIREBASE_CLIENT_ID",
      "FIREBASE_CLIENT_X509_CERT_URL"], "FIREBASE_CLIENT_EMAIL is set, but "
     "FIREBASE_PRIVATE_KEY is not"),
])
def test_a_partial_service_account_names_what_is_missing(private_key: str, drop: list[str],
                                                         message: str) -> None:
    env = {k: v for k, v in app_variables(private_key).items() if k not in drop}
    with pytest.raises(ConfigurationError) as error:
        resolve(env)
    assert str(error.value) == f"the Firebase service account is incomplete: {message}"


def test_a_key_that_is_not_a_key_is_a_usage_error_without_its_text(private_key: str) -> None:
    env = app_variables(private_key)
    env["FIREBASE_PRIVATE_KEY"] = "-----BEGIN PRIVATE KEY-----\\nnot-a-key-SECRET\\n"
    with pytest.raises(ConfigurationError) as error:
        make_client(resolve(env))  # type: ignore[arg-type]
    assert "SECRET" not in str(error.value)
    assert str(error.value).startswith("the credentials from variables FIREBASE_PRIVATE_KEY")


def test_where_the_project_comes_from_in_order(tmp_path: Path) -> None:
    config = tmp_path / "firebase.json"
    config.write_text(json.dumps({"projectId": "from-file"}))
    env = {"GOOGLE_CLOUD_PROJECT": "proj-a", "GCLOUD_PROJECT": "proj-b",
           "FIREBASE_PROJECT_ID": "proj-c", "FIREBASE_CONFIG": '{"projectId": "proj-d"}',
           "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"}
    expected = [("explicit", "--project"), ("proj-a", "variable GOOGLE_CLOUD_PROJECT"),
                ("proj-b", "variable GCLOUD_PROJECT"), ("proj-c", "variable FIREBASE_PROJECT_ID"),
                ("proj-d", "variable FIREBASE_CONFIG (projectId)")]
    for n, (project, source) in enumerate(expected):
        target = resolve(env, project="explicit" if n == 0 else None)
        assert (target.project, target.project_source) == (project, source)  # type: ignore[attr-defined]
        if n:
            env.pop(["GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "FIREBASE_PROJECT_ID",
                     "FIREBASE_CONFIG"][n - 1])
    env["FIREBASE_CONFIG"] = str(config)
    assert resolve(env).project == "from-file"  # type: ignore[attr-defined]
    env["FIREBASE_CONFIG"] = "{not json"
    with pytest.raises(ConfigurationError, match=r"^FIREBASE_CONFIG does not hold JSON$"):
        resolve(env)


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[dict[str, str]]:
    """No network: every HTTP and gRPC connection goes to a closed port on this machine
    (the proxy variables both libraries honour), so nothing leaves it."""
    closed = f"http://{dead_address()}"
    yield {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "https_proxy": closed,
           "HTTPS_PROXY": closed, "grpc_proxy": closed, "no_proxy": "", "NO_PROXY": ""}


@pytest.mark.slow
def test_the_runbook_step_1_with_the_apps_variables_reaches_for_the_database(
        private_key: str, offline: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "run_backfill_production.py", "--dry-run", "--environment",
         "production", "--max-retry-seconds", "1", "--output-dir", str(out)],
        cwd=REPO, env={**offline, **app_variables(private_key)}, capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert ("🎯 Target: project wardrobe-prod, database (default), collection wardrobe "
            "(Google Cloud; credentials: variables FIREBASE_PRIVATE_KEY, FIREBASE_CLIENT_EMAIL, "
            "FIREBASE_PRIVATE_KEY_ID, FIREBASE_CLIENT_ID, FIREBASE_CLIENT_X509_CERT_URL; "
            "project from variable FIREBASE_PROJECT_ID)") in done.stderr
    assert "❌ the database could not be reached: counting documents failed" in done.stderr
    body = private_key.split("-----")[2].replace("\n", "")
    written = "".join(p.read_text() for p in out.rglob("*") if p.is_file()) if out.exists() \
        else ""
    for text in (done.stdout, done.stderr, written):
        for line in (body[i:i + 16] for i in range(0, len(body), 16)):
            assert line not in text


def test_a_partial_set_is_exit_2_before_anything_is_read(private_key: str,
                                                         offline: dict[str, str],
                                                         tmp_path: Path) -> None:
    env = {**offline, **app_variables(private_key)}
    del env["FIREBASE_CLIENT_EMAIL"]
    done = subprocess.run(
        [sys.executable, "run_backfill_production.py", "--dry-run", "--environment",
         "production", "--output-dir", str(tmp_path)], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "❌ the Firebase service account is incomplete: FIREBASE_PRIVATE_KEY, "
        "FIREBASE_PRIVATE_KEY_ID, FIREBASE_CLIENT_ID, FIREBASE_CLIENT_X509_CERT_URL are set, "
        "but FIREBASE_CLIENT_EMAIL is not")
    assert private_key.split("\n")[1] not in done.stderr


def key_of(project: str, pem: str) -> dict[str, str]:
    return {"type": "service_account", "project_id": project, "private_key": pem,
            "client_email": f"backfill@{project}.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token"}


def test_which_credentials_win_and_the_keys_own_project(private_key: str,
                                                        tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key_of("from-key-file", private_key)))
    env = {**app_variables(private_key), "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
           "FIRESTORE_CREDENTIALS_JSON": json.dumps(key_of("from-json-var", private_key))}
    del env["FIREBASE_PROJECT_ID"]  # no project variable: the key's own project_id counts
    from_key = "the service-account key (project_id)"

    target: Any = resolve(env)
    assert target.credentials_source == f"key file {key_file} (GOOGLE_APPLICATION_CREDENTIALS)"
    assert (target.project, target.project_source) == ("from-key-file", from_key)

    del env["GOOGLE_APPLICATION_CREDENTIALS"]
    target = resolve(env)
    assert target.credentials_source == "variable FIRESTORE_CREDENTIALS_JSON"
    assert (target.project, target.project_source) == ("from-json-var", from_key)

    del env["FIRESTORE_CREDENTIALS_JSON"]
    env["FIREBASE_PROJECT_ID"] = "from-firebase"
    target = resolve(env)
    assert target.credentials_source == (
        "variables FIREBASE_PRIVATE_KEY, FIREBASE_CLIENT_EMAIL, FIREBASE_PRIVATE_KEY_ID, "
        "FIREBASE_CLIENT_ID, FIREBASE_CLIENT_X509_CERT_URL")
    assert (target.project, target.project_source) == ("from-firebase",
                                                       "variable FIREBASE_PROJECT_ID")
    # A project variable of Google's wins over Firebase's and the key's.
    env["GOOGLE_CLOUD_PROJECT"] = "proj-explicit"
    assert resolve(env).project == "proj-explicit"  # type: ignore[attr-defined]
