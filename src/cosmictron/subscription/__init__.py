"""Live subscriptions: a query's rows, then exactly what each transaction changes.

Owns: compiling subscribable queries (``live.compile_live``: ``SELECT t.*`` over inner
joins with WHERE filters and an optional ``ORDER BY … LIMIT n``), maintaining them
incrementally from each transaction's ``TableChange`` lists (``LiveQuery.delta``, the
telescoping join delta of docs/design/subscriptions.md), sharing identical queries
between subscribers, and delivering one update per transaction per subscriber
(``SubscriptionManager``). Imports: ``cosmictron.datastore``, ``cosmictron.query`` and the
root modules; the host supplies the writer lock and registers ``on_commit`` as a commit
listener. See docs/guide/subscriptions.md.
"""

from cosmictron.subscription.live import LiveQuery, compile_live
from cosmictron.subscription.manager import Subscription, SubscriptionManager

__all__ = ["LiveQuery", "Subscription", "SubscriptionManager", "compile_live"]
