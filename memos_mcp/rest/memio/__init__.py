"""memio-style stores under ``/v1``: facts, history, documents and graph, thin over the memory core.

Mapping onto the core (one store, the same data every transport sees):

* **Facts** (``/v1/facts``) are the core memories of kind ``fact`` (added as ``memory_content``,
  so a fact added here is found by every other dialect and by MCP, and facts extracted from
  conversations show up here). ``agent_id`` lives in ``metadata.agent_id`` and filters on it.
  A fact is one memory: content longer than the core's ``chunk_size`` is refused (store long text
  as a document). Adding text already stored with the same metadata (agent_id included) returns the
  existing fact (the core de-duplicates); other metadata makes a fact of its own.
* **History** (``/v1/history``): a session is a core conversation; its messages are stored and
  turned into memories by the core before the answer (with a language model too: the answer lists
  the memory ids, so it waits for the extraction). Session search is the core search restricted to memories of
  that conversation. Deleting a session deletes its stored messages; memories made from them stay.
* **Documents** (``/v1/documents``): a document is the set of core memories whose metadata carry
  ``memio_store: "document"`` and its ``doc_id``; the core chunks long content, each chunk being one
  memory with the same metadata and its position in ``sources[0].chunk_index`` (with the whitespace
  around it in ``gap`` and ``tail``). GET reassembles the exact text posted, DELETE removes every chunk,
  PUT replaces them all. A document's chunks are its own: two documents may share text, and deleting
  one leaves the other whole.
  These memories are of core kind ``fact`` (the core adds ``memory_content`` as facts), so the
  facts routes leave out anything marked as a document.
* **Graph** (``/v1/graph``): the core's graph memory. A triple is a relation; its ``metadata`` carries
  its ``confidence`` (the only key accepted on input), the ``memory_ids`` it was extracted from, its
  ``cube_id`` and ``valid_at``. Reads cover every cube the user can read, triples are added to the
  user's default cube, ``DELETE /v1/graph`` clears the graphs of the cubes the user owns. With
  ``graph.enabled`` false every route answers 501 ``not_supported``.

Errors, whatever the route: ``{"error", "detail", "provider": "memos-mcp", "operation"}`` with
404, 422 (any invalid input), 401, 403, 409, 413, 429, 501 and 502 (a store or backend failure).
"""

from __future__ import annotations

# isort: off
# The routes register on DIALECT as their modules load: in this order (that of /openapi.json).
from memos_mcp.rest.memio import facts, history, documents, graph  # noqa: F401
# isort: on
from memos_mcp.rest.memio.dialect import DIALECT

__all__ = ["DIALECT"]
