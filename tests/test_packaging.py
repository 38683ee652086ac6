"""The tools as a Python package: a wheel installed into a fresh venv, its commands run
from another folder; --help-all in sections; structured output for log collectors."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from backfill import __version__
from run_backfill_production import main as backfill
from scripts.backfill_control import main as control
from scripts.backfill_rollback import main as rollback
from scripts.backfill_validation import main as validate
from scripts.vocabulary_report import main as vocabulary
from tests.conftest import Database
from tests.helpers import REPO, SCRIPT, STARTED, wait_for
from tools.sample_data import make_wardrobe

COMMANDS = ("wardrobe-backfill", "wardrobe-validate", "wardrobe-rollback",
            "wardrobe-control", "wardrobe-vocabulary")
SECTIONS = ("Target:", "Run:", "Pacing:", "Backend health:", "Shards:",
            "Output and retries:")


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the checkout's package files, installed into a fresh venv
    (its dependencies seen from this interpreter's site-packages, not downloaded). Built
    once per session: parallel workers share the session's folder, and the first to
    come builds it while the others wait on the lock."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with (shared / "wheel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        venv = shared / "wheel" / "venv"
        if not (venv / "installed").exists():
            build_and_install(shared / "wheel")
            (venv / "installed").touch()
    return venv


def build_and_install(work: Path) -> None:
    if work.exists():  # a worker that died half-way through
        shutil.rmtree(work)
    work.mkdir()
    source = work / "source"
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        source.mkdir(exist_ok=True)
        shutil.copy(REPO / name, source / name)
    for package in ("backfill", "normalizer", "wardrobe"):
        shutil.copytree(REPO / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(work / "dist"), str(source)],
                   check=True, capture_output=True, text=True)
    [wheel] = (work / "dist").glob("wardrobe_backfill-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   text=True)
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


@pytest.mark.slow
def test_the_wheel_declares_its_version_python_and_the_three_dependencies(
        installed: Path) -> None:
    metadata = next(installed.glob("lib/python*/site-packages/wardrobe_backfill-*"
                                   ".dist-info/METADATA")).read_text()
    assert f"Version: {__version__}" in metadata
    assert "Requires-Python: >=3.11" in metadata
    required = sorted(line.split(": ", 1)[1] for line in metadata.splitlines()
                      if line.startswith("Requires-Dist: "))
    wanted = sorted(line.strip() for line in (REPO / "requirements.txt").read_text()
                    .splitlines() if line.strip() and not line.startswith("#"))
    def bounds(requirement: str) -> tuple[str, set[str]]:  # click>=8.1,<9: name, bounds
        name, specifiers = re.match(r"([\w.-]+)\s*(.*)", requirement).groups()  # type: ignore[union-attr]
        return name, {part.strip() for part in specifiers.split(",")}

    assert [bounds(r) for r in required] == [bounds(w) for w in wanted]


@pytest.mark.paced  # its first run's own pace, which its resume carries on
@pytest.mark.slow
def test_the_installed_commands_work_from_any_folder(installed: Path, db: Database,
                                                      tmp_path: Path) -> None:
    db.seed(make_wardrobe(40))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in COMMANDS:
        shown = subprocess.run([str(installed / "bin" / command), "--help"], cwd=elsewhere,
                               capture_output=True, text=True, env=db.env, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"Usage: {command} ")
    version = subprocess.run([str(installed / "bin" / "wardrobe-backfill"), "--version"],
                             cwd=elsewhere, capture_output=True, text=True, env=db.env)
    assert version.stdout.startswith(f"wardrobe-backfill, version {__version__}")
    dry = subprocess.run([str(installed / "bin" / "wardrobe-backfill"), "--dry-run",
                          "--quiet"], cwd=elsewhere, capture_output=True, text=True,
                         env=db.env, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "📊 Items in wardrobe: 40" in dry.stderr and "Would update:" in dry.stdout
    assert (elsewhere / "backfill_production.log").exists()
    # The resume command an installed run prints is the installed command, and works
    # typed as it is, from that folder.
    bin_dir = installed / "bin"
    env = {**db.env, "PATH": f"{bin_dir}:{db.env.get('PATH', '')}"}
    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(["wardrobe-backfill", "--yes", "--quiet", "--batch-size",
                                    "5", "--max-writes-per-second", "5"], cwd=elsewhere,
                                   env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    STARTED.append(process)
    wait_for(tmp_path / "stderr.txt", "Batch 1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    [line] = [line for line in (tmp_path / "stderr.txt").read_text().splitlines()
              if "To continue from the checkpoint:" in line]
    typed = line.split("To continue from the checkpoint: ", 1)[1]
    assert typed.startswith("wardrobe-backfill --environment development --resume ")
    resumed = subprocess.run(shlex.split(typed), cwd=elsewhere, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    validated = subprocess.run(["wardrobe-validate", "--all"], cwd=elsewhere, env=env,
                               capture_output=True, text=True, timeout=120)
    assert validated.returncode == 0 and "40 of 40 items carry" in validated.stderr


@pytest.mark.parametrize("command", [backfill, validate, rollback, control, vocabulary])
def test_each_tool_s_help_all_comes_in_sections_in_the_operator_s_order(command: Any) -> None:
    shown = CliRunner().invoke(command, ["--help-all"])
    assert shown.exit_code == 0
    assert "%%" not in shown.output
    headings = [line for line in shown.output.splitlines() if line.endswith(":")
                and not line.startswith(" ")]
    ours = [h for h in headings if h in SECTIONS]
    assert ours == [s for s in SECTIONS if s in ours] and len(ours) >= 2, headings
    assert "Output and retries:" in ours and "Other options:" not in headings


def structured_run(db: Database, *args: str, env: dict[str, str] | None = None,
                   ) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    done = db.run_script(SCRIPT, list(args), env={**db.env, "CLOUD_RUN_JOB": "wardrobe",
                                                  **(env or {})})
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], \
        [json.loads(line) for line in done.stderr.splitlines()]


@pytest.mark.slow
def test_under_cloud_run_every_line_is_one_json_object(db: Database) -> None:
    db.seed([*make_wardrobe(60), ("hostile", {"style": ["goth"], "metadata": "a string"})])
    code, out, err = structured_run(db, "--yes", "--quiet", "--job-id", "bf-json",
                                    "--batch-size", "25", "--target-field",
                                    "metadata.normalized")
    assert code == 1  # the item error
    for line in out + err:
        assert line["severity"] in ("INFO", "NOTICE", "WARNING", "ERROR")
        assert isinstance(line["message"], str) and line["message"]
        assert line["logging.googleapis.com/labels"]["tool"] == "backfill"
    batches = [line for line in err if re.match(r"Batch \d+:", line["message"])]
    assert {line.get("run_id") for line in batches} == {"bf-json"}
    assert [b["batch"] for b in batches] == list(range(1, len(batches) + 1))
    assert sum(b["processed"] for b in batches) == 61 and sum(b["errors"] for b in batches) == 1
    [summary] = out
    assert summary["message"] == "⚠️  Finished with errors: wardrobe backfill [WRITES]"
    assert summary["summary"]["Processed"] == "61" and summary["summary"]["Errors"] == "1"
    assert summary["errors"][0]["id"] == "hostile"
    refused, _, err = structured_run(db, "--yes", "--collection", "a/b")
    assert refused == 2
    [error] = err
    assert error["severity"] == "ERROR" and error["message"].startswith("❌ --collection")
    usage, _, err = structured_run(db, "--batch-size", "0")
    assert usage == 2 and [e["severity"] for e in err] == ["ERROR"]


@pytest.mark.slow
def test_log_format_text_forces_the_console_and_json_is_never_unasked(db: Database) -> None:
    db.seed(make_wardrobe(30))

    def masked(text: str) -> list[str]:
        return [re.sub(r"\d[\d,]*(\.\d+)?", "N", line) for line in text.splitlines()
                if "Run ID" not in line and "Stats file" not in line]

    plain = db.run_script(SCRIPT, ["--dry-run", "--quiet", "--parallel-reads", "1"])
    forced = db.run_script(SCRIPT, ["--dry-run", "--quiet", "--parallel-reads", "1",
                                    "--log-format", "text"],
                           env={**db.env, "CLOUD_RUN_JOB": "wardrobe"})
    assert plain.returncode == forced.returncode == 0
    assert masked(forced.stdout) == masked(plain.stdout)
    assert masked(forced.stderr) == masked(plain.stderr)
    assert not plain.stdout.startswith("{")
    asked = db.run_script(SCRIPT, ["--dry-run", "--quiet", "--log-format", "json"])
    assert all(json.loads(line)["message"] for line in asked.stderr.splitlines())


@pytest.mark.slow
def test_the_installed_task_command_runs_a_task_of_the_folder_it_is_typed_in(
        installed: Path, db: Database, tmp_path: Path) -> None:
    db.seed({"u1": {"email": "Ann@X.io"}}, collection="users")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(REPO / "examples" / "lowercase_emails.py", elsewhere)
    run = subprocess.run([str(installed / "bin" / "firestore-backfill"), "run",
                          "lowercase_emails:LowercaseEmails", "--yes", "--quiet",
                          "--output-dir", str(tmp_path / "out")], cwd=elsewhere,
                         capture_output=True, text=True, env=db.env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert db.documents("users")["u1"]["emailLower"] == "ann@x.io"
