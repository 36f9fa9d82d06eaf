"""Several ``publisher daemon`` processes on one PostgreSQL store: a cluster, on Procrastinate.

    app       the Procrastinate App on the store's database (psycopg 3)
    tasks     the jobs: a digest slot, a refresh, one batch of a send, settling a send, the
              stalled-jobs retry
    slots     each daemon's deferrer: a slot is deferred once in the whole cluster
              (Procrastinate's periodic defers, unique per task and slot)
    daemon    ``publisher daemon`` on PostgreSQL: the worker, the deferrer, until told to stop
    schema    ``publisher db upgrade``: the store's migrations and Procrastinate's schema

The SQL lives in publisher.store.cluster; ``publisher db copy`` (SQLite to PostgreSQL) in
publisher.store.copy; the feeds' upload to a bucket in publisher.bucket.

On SQLite the daemon stays as it was (publisher.scheduler, APScheduler, one daemon per store).
"""
