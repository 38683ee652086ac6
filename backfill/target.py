"""Which database a run talks to, and the client for it.

Resolution, in order: FIRESTORE_EMULATOR_HOST means the local emulator (the client
library honours it, no credentials needed). Otherwise credentials come from
GOOGLE_APPLICATION_CREDENTIALS (a key file), or from FIRESTORE_CREDENTIALS_JSON (the
service-account JSON itself, as hosting consoles such as Railway keep secrets in
variables), or from Application Default Credentials (Cloud Run, GKE, gcloud). The
project comes from --project, else GOOGLE_CLOUD_PROJECT, else the key's project_id.
Secrets are never printed or logged: errors name the variable, never its content.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import firestore

from backfill.errors import ConfigurationError

ENVIRONMENTS = ("development", "staging", "production")
CREDENTIALS_JSON_VARIABLE = "FIRESTORE_CREDENTIALS_JSON"
DEFAULT_COLLECTION = "wardrobe"
DEFAULT_DATABASE = "(default)"


@dataclass(frozen=True)
class Target:
    environment: str
    project: str
    database: str
    collection: str
    emulator_host: str | None
    credentials_source: str  # where the credentials came from, never what they are

    @property
    def is_emulator(self) -> bool:
        return self.emulator_host is not None

    def describe(self) -> str:
        where = f"EMULATOR at {self.emulator_host}" if self.emulator_host else "Google Cloud"
        return (f"project {self.project}, database {self.database}, collection "
                f"{self.collection} ({where}; credentials: {self.credentials_source})")


def _service_account_info(env: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        try:
            info = json.loads(Path(key_file).read_text())
        except OSError as error:
            raise ConfigurationError(
                f"GOOGLE_APPLICATION_CREDENTIALS points to {key_file}, which cannot be read "
                f"({error.strerror})") from None
        except ValueError:
            raise ConfigurationError(
                f"GOOGLE_APPLICATION_CREDENTIALS points to {key_file}, which is not JSON"
            ) from None
        source = f"key file {key_file}"
    elif env.get(CREDENTIALS_JSON_VARIABLE):
        try:
            info = json.loads(env[CREDENTIALS_JSON_VARIABLE])
        except ValueError:
            raise ConfigurationError(
                f"{CREDENTIALS_JSON_VARIABLE} is set but does not hold JSON "
                "(it should hold the whole service-account key)") from None
        source = f"variable {CREDENTIALS_JSON_VARIABLE}"
    else:
        return None, "application default credentials"
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigurationError(f"the credentials from {source} are not a service-account key")
    return info, source


def resolve_target(*, environment: str, project: str | None, database: str, collection: str,
                   env: dict[str, str] | None = None) -> Target:
    """Check the configuration without touching the network."""
    env = dict(os.environ) if env is None else env
    if environment not in ENVIRONMENTS:
        raise ConfigurationError(f"unknown environment {environment!r}")
    if not collection or "/" in collection:
        raise ConfigurationError(f"--collection must be a top-level collection name, "
                                 f"not {collection!r}")
    emulator_host = env.get("FIRESTORE_EMULATOR_HOST") or None
    if emulator_host:
        info, source = None, "none (emulator)"
    else:
        info, source = _service_account_info(env)
    project = project or env.get("GOOGLE_CLOUD_PROJECT") or (info or {}).get("project_id")
    if not project:
        raise ConfigurationError(
            "no Firestore project: pass --project or set GOOGLE_CLOUD_PROJECT")
    return Target(environment, project, database, collection, emulator_host, source)


def make_client(target: Target, env: dict[str, str] | None = None) -> firestore.Client:
    """The client for a resolved target. Raises ConfigurationError for bad credentials."""
    if target.is_emulator:
        return firestore.Client(project=target.project, database=target.database)
    env = dict(os.environ) if env is None else env
    info, source = _service_account_info(env)
    try:
        if info is None:
            return firestore.Client(project=target.project, database=target.database)
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_info(info)
        return firestore.Client(project=target.project, database=target.database,
                                credentials=credentials)
    except ConfigurationError:
        raise
    except Exception as error:  # google.auth raises several types; none may leak a secret
        raise ConfigurationError(
            f"the credentials from {source} could not be used ({type(error).__name__})"
        ) from None
