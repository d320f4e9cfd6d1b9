"""XOS 4.0's `xossynchronizer` import names, over xos-runtime (xos-runtime-xos-compat).

Only what service synchronizers import is here: `steps.syncstep`, `event_steps.eventstep`,
`pull_steps.pullstep`, `model_policies.policy` and `modelaccessor`. The synchronizer itself
is `xos-runtime run`.
"""
