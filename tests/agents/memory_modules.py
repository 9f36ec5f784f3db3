"""Modules the semantic-memory tests deploy: the agent layer with an embedder bound."""

MEMORY_APP = """
from cosmictron import *
from cosmictron.agents import *

memory_embedder = HashingEmbedder()


@reducer
def remember_and_search(ctx: ReducerContext, text: str, query: list[float]) -> list[str]:
    remember(ctx, "notes", text, memory_embedder.embed([text])[0], "{}", "", "", None)
    return [hit.text for hit in search_memory(ctx, "notes", query, 3)]
"""

NO_EMBEDDER_APP = """
from cosmictron import *
from cosmictron.agents import *


class Exploding:
    model_id = "exploding"
    dims = 384

    def embed(self, texts):
        raise RuntimeError("replay must never embed")


memory_embedder = Exploding()
"""
