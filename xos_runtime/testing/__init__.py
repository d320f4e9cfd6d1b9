"""The supported way to test a plugin: a runtime in this process, on a temporary store.

`Harness` loads a runtime exactly as `xos-runtime run` would (config, discovery, models,
store, engines, start-up hooks) but with only the plugins a test names, on a SQLite store in
a temporary folder, under a `FakeClock` the test moves. The test then creates objects through
`h.accessor`, runs passes (`run_once()`, `run_until_idle()`), publishes messages
(`publish()`), moves time (`advance()`), and reads what happened: the calls made into the
plugins (`calls`, `calls_of()`, each a `Call` taken from the outcome hooks) and the status
the runtime wrote (`reload()`, `state()`, `retry_in()`, `status()`)::

    from xos_runtime.testing import Harness
    from my_plugin.steps import SyncSite  # raises for sites named "broken..."

    MODELS = "message Site (XOSBase) { required string name = 1; }"

    def test_a_failing_site_is_retried_after_its_backoff():
        with Harness([SyncSite], models=MODELS) as h:
            site = h.accessor.Site.objects.create(name="broken-1")
            h.run_until_idle()
            assert h.state(site) == "error" and h.retry_in(site) == 1.0
            h.advance(1.0)  # sync.backoff.initial: the retry is due
            h.run_until_idle()
            assert len(h.calls_of(SyncSite, "sync_record")) == 2

Plugins are named as `plugins.enabled` names them (an installed distribution, entry point or
class), or given as classes (sync steps, policies, pull steps, event steps) and as modules
(or objects) of hook implementations: a plugin's tests then run whether the plugin is
installed or not. Nothing else that is installed runs.

The fake clock drives every wait of the engines: backoff (`next_run`), pull-step intervals,
event retries and the store's timestamps. Backoff jitter is 0 unless the config says
otherwise. Passes run the plugins' code on the engines' worker threads, as in production;
`timeout`s are real seconds.

This module imports neither pytest nor any test framework; wrap a `Harness` in a fixture
of your own.
"""

from xos_runtime.testing._calls import Call, EngineName
from xos_runtime.testing._clock import FakeClock
from xos_runtime.testing._harness import Harness, ModelSource, PluginSpec

__all__ = ["Call", "EngineName", "FakeClock", "Harness", "ModelSource", "PluginSpec"]
