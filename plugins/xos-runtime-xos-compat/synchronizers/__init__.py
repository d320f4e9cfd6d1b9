"""`synchronizers.new_base`: the pre-4.0 XOS import paths, as aliases of the 4.0 ones.

XOS 4.0 services import `xossynchronizer`; hippie-oss and the older versions of the other
services import `synchronizers.new_base.*`. Same classes, other names.
"""
