"""The llama.cpp contender of the generation benchmark, through llama-cpp-python.

Run by tektra-bench-generate with the bench venv's Python:

  llama_cpp_child.py quantize SRC DST
      Writes a Q4_K_M copy of SRC with llama.cpp's quantizer (requantizing
      the Q4_1 file), to a temporary name renamed to DST when complete.

  llama_cpp_child.py run GGUF PROMPT_FILE N_GEN PROMPT_TOKENS N_CTX SPAWNED_NS
      Loads GGUF with 2 threads and a context of N_CTX, warms up on two
      tokens, then reads the prompt (which must be PROMPT_TOKENS tokens, as
      for our tokenizer) in batches of 512 and generates N_GEN tokens
      greedily (argmax of the last logits; it stops at end-of-sequence as
      ours does). Prints one JSON line with the same fields the Rust
      children print, its note naming the CPU features the build uses.
      SPAWNED_NS is the parent's CLOCK_MONOTONIC reading just before it
      started this process.
"""

import ctypes
import json
import os
import sys
import time

import llama_cpp
import numpy as np

THREADS = 2


def quantize(src, dst):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.allow_requantize = True
    params.nthread = THREADS
    tmp = dst + ".partial"
    rc = llama_cpp.llama_model_quantize(
        src.encode(), tmp.encode(), ctypes.byref(params)
    )
    if rc != 0:
        sys.exit(f"llama_model_quantize failed with {rc}")
    os.replace(tmp, dst)


def run(path, prompt_file, n_gen, prompt_tokens, n_ctx, spawned_ns):
    with open(prompt_file, encoding="utf-8") as f:
        prompt = f.read().rstrip()
    started = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=path,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        n_ctx=n_ctx,
        n_batch=512,
        verbose=False,
    )
    n_vocab = llm.n_vocab()

    def last_argmax():
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,)
        )
        return int(np.argmax(logits))

    bos = llm.token_bos()
    llm.eval([bos, bos])
    llm.reset()
    llama_cpp.llama_perf_context_reset(llm.ctx)
    load_secs = time.perf_counter() - started

    gen_start_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    start = time.perf_counter()
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=False)
    if len(tokens) != prompt_tokens:
        sys.exit(f"the prompt is {len(tokens)} tokens for llama.cpp, not {prompt_tokens}")
    llm.eval(tokens)
    out = [last_argmax()]
    first = time.perf_counter()
    eos = llm.token_eos()
    while len(out) < n_gen and out[-1] != eos:
        llm.eval([out[-1]])
        out.append(last_argmax())
    end = time.perf_counter()
    perf = llama_cpp.llama_perf_context(llm.ctx)
    ttft = first - start
    print(
        json.dumps(
            {
                "load_secs": load_secs,
                "ttft_secs": ttft,
                "gen_tokens_per_sec": (len(out) - 1) / (end - first),
                "prompt_tokens": len(tokens),
                "generated": len(out),
                "stop": "max_tokens",
                "first_token_since_spawn_secs": (gen_start_ns - spawned_ns) / 1e9 + ttft,
                "text": llm.detokenize(out).decode("utf-8", errors="replace"),
                "note": "system info: %s; llama.cpp's own timings: prompt %.1f ms for %d tokens, "
                "%d single-token decodes at %.1f tokens/s"
                % (
                    llama_cpp.llama_print_system_info().decode().strip(),
                    perf.t_p_eval_ms,
                    perf.n_p_eval,
                    perf.n_eval,
                    perf.n_eval / perf.t_eval_ms * 1000 if perf.t_eval_ms else 0.0,
                ),
            }
        )
    )


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "quantize":
        quantize(args[1], args[2])
    elif len(args) == 7 and args[0] == "run":
        run(args[1], args[2], int(args[3]), int(args[4]), int(args[5]), int(args[6]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
