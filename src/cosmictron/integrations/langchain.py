"""LangChain integrations, one module each, named together here (DESIGN.md §8):
``CosmictronVectorStore`` (``langchain_vectorstore``), ``CosmictronCallbackHandler``
(``langchain_callbacks``) and ``CosmictronChatMessageHistory`` (``langchain_history``, a
migration shim only). Needs the ``langchain`` extra: ``pip install 'cosmictron[langchain]'``.
"""

from cosmictron.integrations.langchain_callbacks import CosmictronCallbackHandler
from cosmictron.integrations.langchain_history import CosmictronChatMessageHistory
from cosmictron.integrations.langchain_vectorstore import CosmictronVectorStore

__all__ = ["CosmictronCallbackHandler", "CosmictronChatMessageHistory", "CosmictronVectorStore"]
