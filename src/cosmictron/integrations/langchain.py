"""LangChain integrations: ``CosmictronVectorStore``, ``CosmictronCallbackHandler`` and
``CosmictronChatMessageHistory`` (a migration shim), one module each; this module names
them together (DESIGN.md §8). Needs the ``langchain`` extra:
``pip install 'cosmictron[langchain]'``.
"""

from cosmictron.integrations.langchain_vectorstore import CosmictronVectorStore

__all__ = ["CosmictronVectorStore"]
