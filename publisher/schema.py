"""The old name of :mod:`publisher.store.schema`, kept so ``publisher.schema`` still imports."""

import sys

from publisher.store import schema as _schema

sys.modules[__name__] = _schema
