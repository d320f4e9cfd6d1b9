"""Discovery reads the installed distributions once for all its entry-point groups."""

from __future__ import annotations

import importlib.metadata


def test_installed_distributions_are_scanned_once_for_every_group(monkeypatch):
    from xos_runtime.plugins import entrypoints

    scans = []
    real = importlib.metadata.entry_points

    def counting(**kwargs):
        scans.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    monkeypatch.setattr(entrypoints, "_scanned", None)
    groups = ["xos_runtime.sync_steps", "xos_runtime.model_policies", "console_scripts"]
    found = [entrypoints.entry_points_of(g) for g in groups]
    assert len(scans) == 1  # one scan answers every group
    assert any(ep.name == "xos-runtime" for ep in found[2])  # ...with the real answer
    monkeypatch.syspath_prepend("/nonexistent-xrt-path")  # what is installed may differ now
    entrypoints.entry_points_of(groups[0])
    assert len(scans) == 2
