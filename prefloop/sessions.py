"""Database sessions read with one prepared statement (every authenticated request).

Django's ``db`` backend compiles a queryset to read the session row on each request;
this store reads it through ``prefloop.rawsql`` (prepared on PostgreSQL). Writing,
rotating and deleting sessions are Django's own code, unchanged, on the same table.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.contrib.sessions.backends import db
from django.utils import timezone

from prefloop import rawsql

_READ = "SELECT session_data FROM django_session WHERE session_key = %s AND expire_date > %s"


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> SimpleNamespace | None:
        if not self.session_key:  # Django's validation: None or too short a key
            self._session_key = None
            return None
        with rawsql.cursor() as cursor:
            cursor.execute(_READ, [self.session_key, rawsql.when(timezone.now())])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return SimpleNamespace(session_data=row[0])
