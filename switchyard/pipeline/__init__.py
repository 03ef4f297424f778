"""The job pipeline, as plain functions over the database (no Celery here).

prompt -> :mod:`intake` (validate, store, plan shards) -> :mod:`tag_and_route` (one
batch: tags, route decisions) -> :mod:`dispatch` (one request: provider call, stored
result) -> :mod:`finalize` (output and error files). The Celery tasks in ``workers/``
are thin shells over these functions.
"""
