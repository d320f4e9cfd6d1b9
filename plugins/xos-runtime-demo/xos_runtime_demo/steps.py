"""The demo's sync steps: one per model, each mirroring its objects into JSON files.

A step writes `<out>/<Model>/<id>.json` holding the object's own fields and its links as ids
(bookkeeping fields are left out, so the file changes only when the user's data does), and
removes the file when the object is deleted. `SyncSite` refuses sites whose name starts with
"broken", so that a demo run shows an error, its backoff, and the dependents held back.
"""

from __future__ import annotations

from typing import Any, ClassVar

from xos_runtime import SyncStep
from xos_runtime_demo.output import record_path, remove_record, write_record

__all__ = ["SyncInstance", "SyncSite", "SyncSlice", "SyncUser"]


class JsonFileStep(SyncStep):
    """Base of the demo steps: `fields` are copied from the object into its JSON file.

    Not registered itself: only its subclasses are named by entry points.
    """

    #: The model this step observes (a single model per step keeps the files easy to find).
    observes: ClassVar[str]
    #: Attribute names written to the file, besides `id`; links are given as `<link>_id`.
    fields: ClassVar[tuple[str, ...]] = ()

    def record(self, obj: Any) -> dict[str, Any]:
        """The content of the object's file."""
        return {"id": obj.id, "model": self.observes} | {f: getattr(obj, f) for f in self.fields}

    def sync_record(self, obj: Any) -> None:
        path = record_path(self.observes, obj.id)
        if write_record(path, self.record(obj)):
            self.log.info("wrote {} {} to {}", self.observes, obj.id, path)
        else:
            self.log.info("{} {} already up to date in {}", self.observes, obj.id, path)

    def delete_record(self, obj: Any) -> None:
        path = record_path(self.observes, obj.id)
        if remove_record(path):
            self.log.info("removed {}", path)
        else:
            self.log.info("{} {} had no file at {}; nothing to remove", self.observes, obj.id, path)


class SyncSite(JsonFileStep):
    """Writes sites; rejects those named "broken..." to demonstrate error handling."""

    observes = "Site"
    fields = ("name", "login_base", "enabled")

    def sync_record(self, obj: Any) -> None:
        # A plain Exception, as a real backend client would raise: the runtime records it as
        # an error (backend_code 2), backs off, and holds back the site's users and slices.
        if (obj.name or "").startswith("broken"):
            raise Exception(
                f"backend rejected site {obj.name!r}: "
                "the demo backend refuses sites whose name starts with 'broken'"
            )
        super().sync_record(obj)


class SyncUser(JsonFileStep):
    """Writes users."""

    observes = "User"
    fields = ("email", "site_id")


class SyncSlice(JsonFileStep):
    """Writes slices."""

    observes = "Slice"
    fields = ("name", "site_id", "creator_id")


class SyncInstance(JsonFileStep):
    """Writes instances."""

    observes = "Instance"
    fields = ("name", "slice_id", "image")
