"""The deploy files, exercised as far as this machine allows (no Docker engine, no cluster):
each manifest's container arguments and environment, with the engine's task variables
added, go through the real command-line parser and the real option checks."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from backfill.cli import RunOptions, check_combinations
from backfill.errors import ConfigurationError
from backfill.shards import Shard
from backfill.target import resolve_target
from run_backfill_production import main
from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def load(name: str) -> dict[str, Any]:
    """A manifest as the operator deploys it: its placeholders filled in."""
    text = (DEPLOY / name).read_text().replace("PROJECT_ID", "wardrobe-prod")
    return dict(yaml.safe_load(text.replace("REGION", "europe-west1")))


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]["template"]["spec"]
    spec = spec.get("template", {}).get("spec", spec)  # Cloud Run nests one more template
    containers = spec["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def parse(args: list[str], env: dict[str, str],
          monkeypatch: pytest.MonkeyPatch) -> tuple[RunOptions, Shard | None]:
    """What the tool makes of a task's arguments and environment, without running it."""
    for name in [n for n in list(os.environ) if n.startswith(
            ("CLOUD_RUN_", "JOB_", "BACKFILL_", "GOOGLE_", "FIREBASE_", "FIRESTORE_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    context = main.make_context("run_backfill_production.py", list(args))
    # --log-format is the CLI boundary's (run_boundary takes it), not the run's.
    options = RunOptions(**{k: v for k, v in context.params.items() if k != "log_format"})
    resolve_target(environment=options.environment, project=options.project,
                   database=options.database, collection=options.collection)
    return check_combinations(options)


def k8s_expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes expands $(NAME) in args from the container's environment."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)


@pytest.mark.parametrize("index", [0, 7])
def test_cloud_run_job_tasks_are_production_runs_of_their_shard(
        index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = load("cloud-run-job.yaml")
    spec = manifest["spec"]["template"]["spec"]
    count = spec["taskCount"]
    box = container(manifest)
    env = {e["name"]: e["value"] for e in box.get("env", []) if "value" in e}
    # What Cloud Run Jobs set in every task.
    env.update(CLOUD_RUN_TASK_INDEX=str(index), CLOUD_RUN_TASK_COUNT=str(count),
               CLOUD_RUN_EXECUTION="wardrobe-backfill-abc12")
    options, shard = parse(box["args"], env, monkeypatch)
    assert options.environment == "production" and options.yes and not options.dry_run
    assert shard == Shard(index, count)
    assert options.job_id == "wardrobe-backfill-abc12"


def mount_secrets(box: dict[str, Any], env: dict[str, str], tmp_path: Path,
                  private_key: str) -> None:
    """Stand in for the Secret volume: a key file where the pod would see it."""
    for mount in box.get("volumeMounts", []):
        folder = tmp_path / mount["mountPath"].strip("/")
        folder.mkdir(parents=True)
        (folder / "key.json").write_text(json.dumps({
            "type": "service_account", "project_id": "wardrobe-prod",
            "private_key": private_key,
            "client_email": "backfill@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token"}))
        for name, value in env.items():
            if value.startswith(mount["mountPath"]):
                env[name] = str(tmp_path / value.strip("/"))


@pytest.mark.parametrize("index", [0, 7])
def test_k8s_indexed_job_pods_are_production_runs_of_their_shard(
        index: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, private_key: str) -> None:
    manifest = load("k8s-indexed-job.yaml")
    box = container(manifest)
    name = manifest["metadata"]["name"]
    env = {e["name"]: e["value"] for e in box.get("env", []) if "value" in e}
    mount_secrets(box, env, tmp_path, private_key)
    env["JOB_NAME"] = name  # the downward API's job-name label
    env["JOB_COMPLETION_INDEX"] = str(index)  # what an Indexed Job sets in every pod
    args = [k8s_expand(arg, env) for arg in box["args"]]
    options, shard = parse(args, env, monkeypatch)
    assert options.environment == "production" and options.yes and not options.dry_run
    assert shard == Shard(index, manifest["spec"]["completions"])
    assert options.job_id == name


def test_a_task_without_its_engine_variables_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    box = container(load("k8s-indexed-job.yaml"))
    env = {"GOOGLE_CLOUD_PROJECT": "wardrobe-prod", "JOB_COMPLETION_INDEX": "0"}
    args = [a for a in box["args"] if not a.startswith("--job-id")]
    with pytest.raises(ConfigurationError) as refused:
        parse(args, env, monkeypatch)
    assert str(refused.value) == (
        "a sharded run needs --job-id (Cloud Run Jobs set CLOUD_RUN_EXECUTION), so that its "
        "tasks share one entry in the ledger")


def test_the_image_has_the_python_and_the_versions_the_suite_runs_on() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    python = re.search(r"^FROM python:(\d+\.\d+)", dockerfile, re.M)
    assert python is not None
    # The app backend's Python; the tools and this suite run on 3.11 or newer.
    assert python.group(1) == "3.11" and sys.version_info >= (3, 11)
    # The image installs the runtime requirements constrained to the app's versions,
    # which `make test-app` (and CI) run the whole suite against.
    assert "-r requirements.txt -c requirements-app.txt" in dockerfile
    assert "test-app" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert "-r requirements-dev.txt -c requirements-app.txt" in makefile
    for copied in ("requirements-app.txt", "normalizer/", "backfill/", "scripts/",
                   "run_backfill_production.py"):
        assert copied in dockerfile
    # The package is installed (its console scripts), its dependencies constrained above.
    assert "pip install --no-cache-dir --no-deps ." in dockerfile
    assert 'ENTRYPOINT ["wardrobe-backfill"]' in dockerfile
