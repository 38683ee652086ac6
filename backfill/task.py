"""The public task API: a backfill is a class with a collection and a `changes()` method;
the engine gives it every guarantee (a dry run that writes nothing, a precondition on
every write, a journal and its exact undo, resume, one writer per collection, ...).

    from backfill import Task

    class UnifyUserId(Task):
        '''Items carry userId, whichever field an older app version used.'''
        collection = "wardrobe"
        reads = ("userId", "uid")

        def changes(self, doc_id, data):
            if data.get("uid") and data.get("userId") != data["uid"]:
                return {"userId": data["uid"]}
            return None

`TaskJob` is how the engine runs one (the Job of `batch.py`); `load_task` finds one by
its MODULE:CLASS, imported from the current directory as `uvicorn main:app` is.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from google.cloud import firestore
from google.cloud.firestore_v1 import DELETE_FIELD, SERVER_TIMESTAMP, GeoPoint
from google.cloud.firestore_v1.document import DocumentReference
from google.cloud.firestore_v1.transforms import (
    ArrayRemove,
    ArrayUnion,
    Increment,
    Maximum,
    Minimum,
)
from google.cloud.firestore_v1.vector import Vector

from backfill.batch import Decision, PageSource
from backfill.errors import ConfigurationError
from backfill.fields import describe, field_path_problem
from backfill.limits import TASK_TOOL
from backfill.retry import RetryPolicy
from backfill.target_field import TargetField


class Task:
    """A backfill of one collection. Subclass it; set `collection`; write `changes()`.

    Optional: `reads` (a field mask: only these fields are read; default the whole
    document), `name` (default the class name), `version` (recorded with each run).
    `self.client` is a google.cloud.firestore.Client on the run's target, set before the
    first call, for tasks that read other documents."""

    collection: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...] | None] = None
    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    client: firestore.Client

    @property
    def description(self) -> str:
        return (type(self).__doc__ or "").strip()

    def changes(self, doc_id: str, data: dict[str, Any]) -> Mapping[str, Any] | None:
        """What to write on this document: field paths (dotted, as update() takes them)
        to new values, DELETE_FIELD or SERVER_TIMESTAMP included; None or {} when it is
        fine. Called again for the same document after a conflict: keep no state per call."""
        raise NotImplementedError


def load_task(spec: str) -> type[Task]:
    """The Task class MODULE:CLASS names, imported from the current directory; a bad one
    is a ConfigurationError of one line, before anything is read."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ConfigurationError(f"task {spec!r} is not MODULE:CLASS (for instance "
                                 "migrations.user_ids:UnifyUserId)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # a task's own import error is the user's to see, in a line
        raise ConfigurationError(f"task {spec}: module {module_name!r} could not be "
                                 f"imported: {type(error).__name__}: {error}") from error
    found = getattr(module, class_name, None)
    if not isinstance(found, type) or not issubclass(found, Task):
        what = "has no" if found is None else "has a non-Task"
        raise ConfigurationError(f"task {spec}: module {module_name} {what} class "
                                 f"{class_name!r} (a subclass of backfill.Task)")
    _check_declaration(spec, found)
    return found


def _check_declaration(spec: str, task: type[Task]) -> None:
    if not isinstance(task.collection, str) or not task.collection:
        raise ConfigurationError(f"task {spec}: no collection (set `collection = \"...\"` "
                                 "on the class)")
    if not callable(task.changes) or task.changes is Task.changes:
        raise ConfigurationError(f"task {spec}: no changes(self, doc_id, data) method")
    try:
        task()
    except Exception as error:  # its own __init__: the user's to see, in a line
        raise ConfigurationError(f"task {spec}: {task.__name__}() failed: "
                                 f"{type(error).__name__}: {error}") from error
    if task.reads is not None:
        if isinstance(task.reads, str) or not all(isinstance(r, str) for r in task.reads):
            raise ConfigurationError(f"task {spec}: reads must be a tuple of field paths")
        for path in task.reads:
            problem = field_path_problem(path)
            if problem:
                raise ConfigurationError(f"task {spec}: reads: {problem}")


def task_name(task: type[Task]) -> str:
    return task.name or task.__name__


class TaskJob:
    """A Task as the engine runs it: its changes() checked (a mapping of well-formed
    paths, never through a non-map parent), values it already holds dropped, each change
    journaled before it is written."""

    tool = TASK_TOOL
    journaled = True
    target: TargetField | None = None  # a task writes the paths it returns

    def __init__(self, task: Task) -> None:
        self.task = task
        self.read_fields: tuple[str, ...] | None = (None if task.reads is None
                                                    else tuple(task.reads))

    def decide(self, doc_id: str, data: dict[str, Any]) -> Decision:
        try:
            # A copy: the engine journals what the document held, whatever the task does
            # with what it is given.
            returned = self.task.changes(doc_id, copy.deepcopy(data))
        except KeyboardInterrupt:
            raise  # the operator's: the run stops, at a clean point
        except BaseException as error:  # the task's own: an item error, the run goes on
            return Decision(doc_id, None, problem=f"changes() raised {type(error).__name__}: "
                                                  f"{describe(error)}")
        if returned is None:
            return Decision(doc_id, None)
        if not isinstance(returned, Mapping):
            return Decision(doc_id, None, problem=f"changes() returned "
                                                  f"{type(returned).__name__}, not a "
                                                  "mapping or None: nothing written")
        problem = self._bad_path(returned, data) or _bad_value(returned)
        if problem:
            return Decision(doc_id, None, problem=problem + ": nothing written")
        # What the document holds already is dropped by the run, once it has read every
        # path written (backfill.fields.without_unchanged).
        return Decision(doc_id, dict(returned) or None)

    def _bad_path(self, returned: Mapping[Any, Any], data: dict[str, Any]) -> str | None:
        paths = list(returned)
        for path in paths:
            problem = field_path_problem(path) if isinstance(path, str) else \
                f"{describe(path)} is not a field path"
            if problem:
                return f"changes() returned a bad path: {problem}"
        given = set(paths)
        for path in paths:
            segments = path.split(".")
            outer = next((".".join(segments[:k]) for k in range(1, len(segments))
                          if ".".join(segments[:k]) in given), None)
            if outer is not None:
                return f"changes() returned {outer!r} and a path inside it, {path!r}"
            blocked = TargetField(path).blocked_by(data)
            if blocked is not None and returned[path] is not DELETE_FIELD:  # absent: a no-op
                return f"{blocked}: {path} cannot be written without replacing it"
        return None

    def page_source(self, client: firestore.Client, collection: str,
                    policy: RetryPolicy) -> PageSource | None:
        return None  # every document of the collection


TRANSFORMS = (Increment, ArrayUnion, ArrayRemove, Maximum, Minimum)
PLAIN = (type(None), bool, str, bytes, float, datetime, GeoPoint, DocumentReference, Vector)


def _bad_value(returned: Mapping[str, Any]) -> str | None:
    """Why a value returned cannot be written (or undone), if one cannot."""
    for path, value in returned.items():
        problem = _value_problem(value, whole=True)
        if problem:
            return f"changes() returned for {path}: {problem}"
    return None


def _value_problem(value: Any, whole: bool = False) -> str | None:
    """What Firestore does not store, or an undo could not give back: a transform (its
    effect depends on what is there), a sentinel inside a value, an array in an array, a
    map key that is not a string, an integer beyond 64 bits, a foreign object."""
    if value is DELETE_FIELD or value is SERVER_TIMESTAMP:
        return None if whole else f"{describe(value)} inside a value (only a path's whole value)"
    if isinstance(value, TRANSFORMS):
        return (f"{type(value).__name__}: a transform, which an undo could not give back "
                "(return the value itself)")
    if isinstance(value, int) and not isinstance(value, bool):
        return None if -2**63 <= value < 2**63 else "an integer beyond 64 bits"
    if isinstance(value, PLAIN):
        return None
    if isinstance(value, list | tuple):
        if any(isinstance(element, list | tuple) for element in value):
            return "an array in an array, which Firestore does not store"
        return next(filter(None, map(_value_problem, value)), None)
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) and key for key in value):
            return "a map with a key that is not a non-empty string"
        return next(filter(None, map(_value_problem, value.values())), None)
    return f"{describe(value)}, a {type(value).__name__}, which Firestore does not store"
