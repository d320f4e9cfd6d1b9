"""The demo's model policy: fills in a site's `login_base` when the user left it out."""

from __future__ import annotations

import re
from typing import Any

from xos_runtime import ModelPolicy

__all__ = ["SitePolicy", "slugify"]

#: XOS login bases are short identifiers; the demo keeps them to this many characters.
LOGIN_BASE_MAX = 20


def slugify(name: str) -> str:
    """`name` lowercased with everything but ASCII letters and digits dropped, at most 20 chars."""
    return re.sub(r"[^a-z0-9]", "", name.lower())[:LOGIN_BASE_MAX]


class SitePolicy(ModelPolicy):
    """Gives every new site a `login_base`, as XOS did when an operator left it empty.

    The save is a policy change, so the runtime re-runs `SyncSite` for the site and the file
    shows the derived value.
    """

    model_name = "Site"

    def handle_create(self, site: Any) -> None:
        if site.login_base:
            return
        # A name with no letters or digits still needs a usable, unique-enough value.
        site.login_base = slugify(site.name or "") or f"site{site.id}"
        site.save(update_fields=["login_base"])
        self.log.info("site {} {!r}: login_base set to {!r}", site.id, site.name, site.login_base)
