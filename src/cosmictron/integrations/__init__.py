"""Integrations with agent frameworks, each an optional extra so the core needs none.

Owns: ``langgraph`` (``CosmictronSaver``, a LangGraph checkpointer; install
``cosmictron[langgraph]``). Imports: ``host`` (an embedded ``Database``), ``client`` (an SDK
connection) and the framework it adapts; nothing in the core imports this package.
Each integration is built from an embedded ``Database`` or from a server's URL
(DESIGN.md §8) and stores its state in tables of ``cosmictron.agents``.
"""
