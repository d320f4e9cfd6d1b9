"""The demo's pluggy hook implementations (entry point `demo` of the `xos_runtime` group).

* `xos_runtime_models`: contributes `models/demo.xproto`, shipped inside the package.
* `xos_runtime_configure`: puts the output folder next to the config file.
* `xos_runtime_startup`: seeds an empty store, so that a first run has something to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loguru import logger

from xos_runtime import hookimpl
from xos_runtime_demo import output

__all__ = ["MODELS_FILE", "SEED_ENV", "seed", "xos_runtime_configure", "xos_runtime_models"]

#: The demo models. Absolute, because the runtime resolves relative paths against the cwd.
MODELS_FILE = Path(__file__).resolve().parent / "models" / "demo.xproto"

#: Environment variable: "0" turns seeding off.
SEED_ENV = "XOS_DEMO_SEED"

log = logger.bind(plugin="xos-runtime-demo")


@hookimpl
def xos_runtime_models() -> list[str]:
    """The xproto file of the demo models."""
    return [str(MODELS_FILE)]


@hookimpl
def xos_runtime_configure(config: Any) -> None:
    """Write under `<folder of the config file>/demo-output` (XOS_DEMO_OUTPUT overrides it).

    Anchoring on the config file rather than the cwd makes the output land in the same place
    however the runtime is started.
    """
    output.configure(Path(config.base_dir) / "demo-output")


@hookimpl
def xos_runtime_startup(runtime: Any) -> None:
    """Seed the demo objects when the store holds no Site and XOS_DEMO_SEED is not "0".

    Checking for existing sites keeps restarts from duplicating the data; the objects are
    created as a user would, so the policies and sync steps pick them up on the first pass.
    """
    if os.environ.get(SEED_ENV, "1") == "0":
        log.info("{}=0: not seeding demo objects", SEED_ENV)
        return
    accessor = runtime.accessor
    if accessor.Site.objects.first() is not None:
        log.info("store already has sites: not seeding demo objects")
        return
    counts = seed(accessor)
    log.info("seeded demo objects: {}", ", ".join(f"{n} {m}" for m, n in counts.items()))


def seed(accessor: Any) -> dict[str, int]:
    """Create the demo objects; return how many of each model were created.

    Three sites: "ONF Menlo" (2 users, 1 slice, 2 instances), "Stanford" (1 user, 1 slice,
    1 instance; its login_base comes from SitePolicy) and "broken-site" (1 user, 1 slice,
    1 instance), which `SyncSite` rejects so that its dependents are held back.
    """
    counts = dict.fromkeys(("Site", "User", "Slice", "Instance"), 0)

    def site(name: str, users: list[str], slice_name: str, instances: list[str], **kw: Any) -> None:
        s = accessor.Site.objects.create(name=name, **kw)
        made = [accessor.User.objects.create(email=email, site=s) for email in users]
        sl = accessor.Slice.objects.create(name=slice_name, site=s, creator=made[0])
        for inst in instances:
            accessor.Instance.objects.create(name=inst, slice=sl, image="ubuntu-22.04")
        counts["Site"] += 1
        counts["User"] += len(made)
        counts["Slice"] += 1
        counts["Instance"] += len(instances)

    site(
        "ONF Menlo",
        ["alice@onf.example", "bob@onf.example"],
        "mysite_demo",
        ["mysite_demo-1", "mysite_demo-2"],
        login_base="onf",
    )
    site("Stanford", ["carol@stanford.example"], "stanford_web", ["stanford_web-1"])
    site("broken-site", ["dave@broken.example"], "broken_slice", ["broken_slice-1"])
    return counts
