"""Integrations with agent frameworks, each an optional extra so the core needs none.

Owns: ``langgraph`` (``CosmictronSaver``, a LangGraph checkpointer, and
``CosmictronStore``, LangGraph's long-term store, from ``langgraph_store``; install
``cosmictron[langgraph]``) and ``langchain`` (``CosmictronVectorStore``,
``CosmictronCallbackHandler`` and the ``CosmictronChatMessageHistory`` migration shim, one
module each; install ``cosmictron[langchain]``); ``connection`` reaches a database
embedded or over the SDK for all but the saver. Imports: ``host`` (an embedded
``Database``), ``client`` (an SDK connection), ``agents`` and the framework it adapts;
nothing in the core imports this package. Each integration is built from an embedded
``Database`` or from a server's URL (DESIGN.md §8) and stores its state in tables of
``cosmictron.agents``.
"""
