"""Which database a run talks to, and the client for it.

Credentials, in order (the first that is set wins):
1. FIRESTORE_EMULATOR_HOST: the local emulator (no credentials).
2. GOOGLE_APPLICATION_CREDENTIALS: the path of a service-account key file.
3. FIRESTORE_CREDENTIALS_JSON: the key's JSON itself, in a variable.
4. FIREBASE_PRIVATE_KEY and FIREBASE_CLIENT_EMAIL (with FIREBASE_PRIVATE_KEY_ID,
   FIREBASE_CLIENT_ID, FIREBASE_CLIENT_X509_CERT_URL when set): the key split over
   variables, as firebase-admin apps keep it on Railway, Vercel or Heroku.
5. Application Default Credentials (Cloud Run, GKE, gcloud). When none can be used, the
   error says where it looked and what to set (where_it_looked).

The project, in order: --project, GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT,
FIREBASE_PROJECT_ID, FIREBASE_CONFIG's projectId (JSON, or the path of a JSON file), the
key's project_id. Secrets are never printed or logged: messages name variables, never
their content.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.cloud import firestore

from backfill.errors import ConfigurationError
from backfill.limits import DEFAULT_COLLECTION as DEFAULT_COLLECTION
from backfill.limits import DEFAULT_DATABASE as DEFAULT_DATABASE
from backfill.limits import ENVIRONMENTS as ENVIRONMENTS
from backfill.names import check_project
from backfill.retry import renew_channel_when_stuck

CREDENTIALS_JSON_VARIABLE = "FIRESTORE_CREDENTIALS_JSON"
# The split service-account variables: required ones first, then the optional ones.
FIREBASE_KEY_VARIABLES = {
    "FIREBASE_PRIVATE_KEY": "private_key",
    "FIREBASE_CLIENT_EMAIL": "client_email",
    "FIREBASE_PRIVATE_KEY_ID": "private_key_id",
    "FIREBASE_CLIENT_ID": "client_id",
    "FIREBASE_CLIENT_X509_CERT_URL": "client_x509_cert_url",
}
FIREBASE_REQUIRED = ("FIREBASE_PRIVATE_KEY", "FIREBASE_CLIENT_EMAIL")
PROJECT_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "FIREBASE_PROJECT_ID")
TOKEN_URI = "https://oauth2.googleapis.com/token"


@dataclass(frozen=True)
class Target:
    environment: str
    project: str
    database: str
    collection: str
    emulator_host: str | None
    credentials_source: str  # where the credentials came from, never what they are
    project_source: str = "--project"
    # The service-account key, when one was given: kept out of repr, str and comparisons.
    service_account: Mapping[str, Any] | None = field(default=None, repr=False,
                                                      compare=False)

    @property
    def is_emulator(self) -> bool:
        return self.emulator_host is not None

    def describe(self) -> str:
        where = f"EMULATOR at {self.emulator_host}" if self.emulator_host else "Google Cloud"
        return (f"project {self.project}, database {self.database}, collection "
                f"{self.collection} ({where}; credentials: {self.credentials_source}; "
                f"project from {self.project_source})")


def _unquote(value: str) -> str:
    """A value as pasted into a hosting console: surrounding quotes and CRs are a mistake."""
    value = value.replace("\r", "").strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value


def _read_json(text: str, what: str, hint: str = "") -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigurationError(f"{what} does not hold JSON{hint}") from None


def _read_json_file(path: str, variable: str) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigurationError(
            f"{variable} points to {path}, which cannot be read ({error.strerror})") from None
    return _read_json(text, f"{variable} points to {path}, which")


def _split_firebase_key(env: Mapping[str, str]) -> dict[str, Any] | None:
    present = [name for name in FIREBASE_KEY_VARIABLES if env.get(name, "").strip()]
    if not present:
        return None
    missing = [name for name in FIREBASE_REQUIRED if name not in present]
    if missing:
        raise ConfigurationError(
            f"the Firebase service account is incomplete: {', '.join(present)} "
            f"{'is' if len(present) == 1 else 'are'} set, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not")
    info: dict[str, Any] = {"type": "service_account", "token_uri": TOKEN_URI}
    for name in present:
        info[FIREBASE_KEY_VARIABLES[name]] = _unquote(env[name])
    # Consoles keep one line per variable: the PEM's newlines are written as \n.
    info["private_key"] = info["private_key"].replace("\\n", "\n")
    project = _unquote(env.get("FIREBASE_PROJECT_ID", ""))
    if project:
        info["project_id"] = project
    return info


def _credentials(env: Mapping[str, str]) -> tuple[Mapping[str, Any] | None, str]:
    """The service-account key (or None for application default credentials), and where
    it came from."""
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        info = _read_json_file(key_file, "GOOGLE_APPLICATION_CREDENTIALS")
        source = f"key file {key_file} (GOOGLE_APPLICATION_CREDENTIALS)"
    elif env.get(CREDENTIALS_JSON_VARIABLE):
        info = _read_json(env[CREDENTIALS_JSON_VARIABLE], f"{CREDENTIALS_JSON_VARIABLE} is set but",
                          " (it should hold the whole service-account key)")
        source = f"variable {CREDENTIALS_JSON_VARIABLE}"
    else:
        info = _split_firebase_key(env)
        if info is None:
            return None, "application default credentials"
        names = [name for name in FIREBASE_KEY_VARIABLES if env.get(name, "").strip()]
        source = f"variables {', '.join(names)}"
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigurationError(f"the credentials from {source} are not a service-account key")
    return info, source


def _project(project: str | None, env: Mapping[str, str],
             key: Mapping[str, Any] | None) -> tuple[str, str]:
    if project:
        return project, "--project"
    for name in PROJECT_VARIABLES:
        value = _unquote(env.get(name, ""))
        if value:
            return value, f"variable {name}"
    config = _unquote(env.get("FIREBASE_CONFIG", ""))
    if config:
        data = (_read_json(config, "FIREBASE_CONFIG") if config.startswith("{")
                else _read_json_file(config, "FIREBASE_CONFIG"))
        if isinstance(data, dict) and data.get("projectId"):
            return str(data["projectId"]), "variable FIREBASE_CONFIG (projectId)"
    if key and key.get("project_id"):
        return str(key["project_id"]), "the service-account key (project_id)"
    raise ConfigurationError(
        "no Firestore project: pass --project or set one of "
        f"{', '.join(PROJECT_VARIABLES)}, FIREBASE_CONFIG")


def resolve_target(*, environment: str, project: str | None, database: str, collection: str,
                   env: Mapping[str, str] | None = None) -> Target:
    """Check the configuration without touching the network."""
    env = os.environ if env is None else env
    if environment not in ENVIRONMENTS:
        raise ConfigurationError(f"unknown environment {environment!r}")
    if not collection or "/" in collection:
        raise ConfigurationError(f"--collection must be a top-level collection name, "
                                 f"not {collection!r}")
    emulator_host = env.get("FIRESTORE_EMULATOR_HOST") or None
    if emulator_host:
        key, source = None, "none (emulator)"
    else:
        key, source = _credentials(env)
    project_id, project_source = _project(project, env, key)
    check_project(project_id, project_source)
    return Target(environment, project_id, database, collection, emulator_host, source,
                  project_source, key)


# gRPC's reconnect backoff grows to 120 s by default; after a run of dropped connections,
# an older grpcio's channel then fails every call for longer than a run retries. Bounded,
# a channel is back within seconds of the database. (Not grpc.min_reconnect_backoff_ms:
# that is also the connect timeout, which must stay long enough for a slow link.)
RECONNECT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    *RECONNECT_OPTIONS,
    # Its own connections: a fresh channel (backfill.retry) must not pick the stuck one
    # up again from gRPC's process-wide pool.
    ("grpc.use_local_subchannel_pool", 1),
]


class Client(firestore.Client):  # type: ignore[misc]
    """The library's client, with our channel options (the library offers no way to pass
    them: this replaces its private channel factory, checked against 2.21 and the newest),
    and a fresh channel when the old one is stuck (backfill.retry)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        renew_channel_when_stuck(self)

    def reset_channel(self) -> None:
        """A new channel for the next call. The old one is not closed (that would cancel
        the calls still on it, in other threads): it closes when they let go of it."""
        self._firestore_api_internal = None

    def _firestore_api_helper(self, transport: Any, client_class: Any,
                              client_module: Any) -> Any:
        if self._firestore_api_internal is None:  # type: ignore[has-type]
            if self._emulator_host is not None:
                # As the library does: insecure, with the emulator's owner token.
                channel = grpc.insecure_channel(self._emulator_host, options=[
                    ("Authorization", "Bearer owner"), *_CHANNEL_OPTIONS])
            else:
                channel = transport.create_channel(self._target, credentials=self._credentials,
                                                   options=_CHANNEL_OPTIONS)
            self._transport = transport(host=self._target, channel=channel)
            self._firestore_api_internal = client_class(transport=self._transport,
                                                        client_options=self._client_options)
            client_module._client_info = self._client_info
        return self._firestore_api_internal


def credentials_of(target: Target) -> Any:
    """The service-account credentials a key gave; None: Application Default Credentials."""
    if target.service_account is None:
        return None
    from google.oauth2 import service_account

    return service_account.Credentials.from_service_account_info(dict(target.service_account))


# What google.auth needs of a service-account key, and a private key's PEM armour.
KEY_FIELDS = ("client_email", "private_key", "token_uri")
PEM_KEY = re.compile(r"-----BEGIN (RSA )?PRIVATE KEY-----\n.+\n-----END (RSA )?PRIVATE KEY-----",
                     re.DOTALL)


def key_problem(key: Mapping[str, Any]) -> str:
    """What is wrong with a service-account key google.auth refused, said without any of
    its values (the private key is a secret; the others may be)."""
    missing = [name for name in KEY_FIELDS
               if not isinstance(key.get(name), str) or not key[name].strip()]
    if missing:
        return (f"the key has no {', '.join(missing)} (a service-account key has all of "
                f"{', '.join(KEY_FIELDS)})")
    if not PEM_KEY.search(key["private_key"]):
        return ("its private_key is not a PEM private key (-----BEGIN PRIVATE KEY-----, "
                "lines of base64, -----END PRIVATE KEY-----, with its newlines)")
    return ("its private_key could not be read as an RSA private key (damaged, cut short, "
            "or another kind of key): download a new key for the service account")


def make_client(target: Target) -> firestore.Client:
    """The client for a resolved target. Raises ConfigurationError for bad credentials."""
    if target.is_emulator:
        return Client(project=target.project, database=target.database)
    try:
        credentials = credentials_of(target)
    except Exception:  # google.auth and cryptography raise several types; say it ourselves
        assert target.service_account is not None  # nothing else is loaded here
        raise ConfigurationError(
            f"the credentials from {target.credentials_source} could not be used: "
            f"{key_problem(target.service_account)}") from None
    try:
        return Client(project=target.project, database=target.database,
                      credentials=credentials)
    except Exception as error:  # google.auth raises several types; none may leak a secret
        looked = "" if target.service_account is not None else f": {where_it_looked()}"
        raise ConfigurationError(
            f"the credentials from {target.credentials_source} could not be used "
            f"({type(error).__name__}){looked}") from None


def gcloud_credentials_file(env: Mapping[str, str]) -> Path:
    """Where `gcloud auth application-default login` leaves its credentials."""
    config = env.get("CLOUDSDK_CONFIG") or str(Path(env.get("HOME") or Path.home())
                                                / ".config" / "gcloud")
    return Path(config) / "application_default_credentials.json"


def where_it_looked(env: Mapping[str, str] | None = None) -> str:
    """Where credentials were looked for, in order, and what to set: none was usable."""
    env = os.environ if env is None else env
    split = " and ".join(FIREBASE_REQUIRED)
    optional = ", ".join(name for name in FIREBASE_KEY_VARIABLES if name not in FIREBASE_REQUIRED)
    adc = gcloud_credentials_file(env)
    last = (f"then gcloud's application default credentials ({adc}, which could not be used)"
            if adc.is_file() else
            f"then gcloud's application default credentials ({adc}: not there) and the "
            "metadata server of Cloud Run, GKE or Compute Engine (none answered)")
    return (
        "looked for, in order, FIRESTORE_EMULATOR_HOST (the emulator), "
        "GOOGLE_APPLICATION_CREDENTIALS (the path of a service-account key file), "
        f"{CREDENTIALS_JSON_VARIABLE} (the key's JSON itself), {split} (the app's service "
        f"account split over variables, with {optional} when it has them): none is set; "
        f"{last}. Set one of those variables, or run `gcloud auth application-default "
        "login`")
