"""`apiclab campaign`: the conformance suite, random differential programs and property searches
spread over the nodes of a Ray cluster, merged into one result keyed by the kind of host.

Ray is an optional extra (`pip install 'apiclab[campaign]'`); only `ray_driver` imports it, so the
rest (planning, the task kinds, the results directory, merging) is plain Python and testable
without a cluster.
"""
