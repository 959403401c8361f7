"""Code that runs inside vLLM's worker processes (``worker_extension_cls`` of VLLMBackend).

Imported by name in each worker, so it must stay importable without Django.
"""

from __future__ import annotations


class PrefloopWorkerExtension:
    """Methods the engine's workers gain; called through ``llm.collective_rpc(name)``."""

    def prefloop_refresh_lm_heads(self) -> int:
        """Redo the weight post-processing of the LM heads after ``reload_weights``.

        vLLM's in-place reload processes a tied parameter only through one of its
        modules (``embed_tokens``; a documented limitation of ``model_loader/reload``).
        On the CPU the LM head keeps a packed copy of the old embedding matrix, so a
        model with tied embeddings would mix old and new weights. Idempotent; a no-op
        where post-processing is (unquantized heads on GPUs).
        """
        from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead

        heads = [
            m for m in self.model_runner.get_model().modules() if isinstance(m, ParallelLMHead)
        ]
        for head in heads:
            head.quant_method.process_weights_after_loading(head)
        return len(heads)
