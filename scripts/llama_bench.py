#!/usr/bin/env python3
"""llama.cpp side of `medview model bench`: the same prompt, file and thread count, greedy decoding.

Prints one JSON object with the same fields as the Swift benchmark. Needs llama-cpp-python.
"""
import argparse
import json
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama

# Must match LocalModelBenchmark.defaultPrompt.
PROMPT = (
    "<|im_start|>system\n"
    "You are a careful health companion. You give general information, you are not a doctor, and you tell people "
    "to seek care when symptoms are severe.<|im_end|>\n"
    "<|im_start|>user\n"
    "I have had a mild headache for two days, I sleep about five hours a night and drink a lot of coffee. What simple "
    "things could I try at home, and when should I see a doctor?<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024
    return 0.0


def last_logits(llm):
    """The logits after the last evaluated token, straight from the context (no copy into llm.scores)."""
    pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    llm = Llama(model_path=args.model, n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads, n_batch=512, verbose=False)
    tokens = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    start = time.perf_counter()
    llm.eval(tokens)
    prompt_done = time.perf_counter()
    token = int(np.argmax(last_logits(llm)))
    first = time.perf_counter()
    produced = [token]
    gen_start = time.perf_counter()
    for _ in range(1, max(2, args.tokens)):
        llm.eval([token])
        token = int(np.argmax(last_logits(llm)))
        produced.append(token)
    gen_end = time.perf_counter()
    print(json.dumps({
        "promptTokens": len(tokens),
        "promptTokensPerSecond": len(tokens) / (prompt_done - start),
        "timeToFirstTokenMilliseconds": (first - start) * 1000,
        "generatedTokens": len(produced) - 1,
        "generationTokensPerSecond": (len(produced) - 1) / (gen_end - gen_start),
        "residentMegabytes": rss_mib(),
        "tokens": produced,
    }))


if __name__ == "__main__":
    main()
