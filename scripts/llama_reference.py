#!/usr/bin/env python3
"""Writes llama.cpp reference fixtures for the Swift local-model tests.

Run it with a Python that has llama-cpp-python (it builds llama.cpp from source; not needed at run
time or by the ordinary test run):

    python3 -m venv /tmp/llamavenv && /tmp/llamavenv/bin/pip install llama-cpp-python
    /tmp/llamavenv/bin/python scripts/llama_reference.py --model data/models/SmolLM2-135M-Instruct.Q4_1.gguf

Fixtures (Tests/MedViewLocalModelTests/Fixtures/):
  tokenizer.json       token ids for a corpus of varied strings (parse_special off and on)
  teacher_forced.json  a token sequence and llama.cpp's top-1 next token at every position
  greedy.json          chat prompts and llama.cpp's greedy continuation (32 tokens, or up to end of turn)

llama.cpp computes the same logits along two paths: a whole prompt in one batch, or one token at a
time (as it does while generating). The two round differently (int8 activations, f16 keys, values
and attention weights, different summation orders), so they do not always agree with each other.
Both are recorded: `top1` / `continuation` from the batched path (the reference), and
`top1_one_by_one` / `continuation_one_by_one` from the token-by-token path, which shows how far
llama.cpp agrees with itself: the noise floor any other implementation is measured against.

    --compare DIR   also prints how this llama.cpp build agrees with fixtures written by another
                    build (for example one compiled for AVX2 only) in DIR.
"""
import argparse
import json
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "Tests", "MedViewLocalModelTests", "Fixtures")

BASE_STRINGS = [
    "", " ", "  ", "\n", "\n\n", "\t", " \t\n ", "a", "A", "Hello", "Hello world", "Hello, world!",
    " Hello world", "Hello  world", "Hello   world", "Hello\nworld", "Hello\n\nworld", "Hello \n world",
    "hello world   ", "   leading spaces", "trailing spaces   ", "tabs\tand\ttabs", "CRLF\r\nline",
    "It's", "it's", "I'm", "you're", "we've", "they'll", "he'd", "don't", "IT'S LOUD", "'quoted'", "O'Brien",
    "rock'n'roll", "1", "12", "123", "1234567890", "3.14159", "-42", "+1 (555) 123-4567", "2024-11-24",
    "10:30 am", "1,000,000", "v1.2.3", "0x7FFF", "1e-5", "50%", "$19.99", "€20", "£5", "¥100",
    "Take 2 tablets every 4-6 hours.", "500 mg ibuprofen", "BP 120/80 mmHg", "HbA1c 6.5%", "SpO2 94%",
    "Metformin 500mg twice daily with meals.", "Do not exceed 4 g of acetaminophen in 24 h.",
    "Patient reports chest pain radiating to the left arm.", "Call 911 if you have trouble breathing.",
    "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "tHe QuIcK bRoWn",
    "!!!", "???", "...", "—", "–", "…", "«guillemets»", "“smart quotes”", "‘single’", "a/b\\c", "@user #tag",
    "email@example.com", "https://example.com/path?q=1&r=2#frag", "C:\\Windows\\System32", "~/.bashrc",
    "café", "naïve", "résumé", "Zoë", "São Paulo", "Ångström", "façade", "coöperate", "Straße", "ØRESUND",
    "e\u0301", "n\u0303o", "Ελληνικά", "Русский текст", "עברית", "العربية", "हिन्दी", "ไทย", "한국어",
    "日本語のテキスト", "中文文本", "汉字和English混合", "東京タワー 333m", "ｆｕｌｌｗｉｄｔｈ", "①②③", "Ⅻ", "½ ¾",
    "😀", "😀😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "✓ done", "→ arrow", "∑ x_i", "√2 ≈ 1.414", "π r²", "°C",
    "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
    "if x == 1 and y != 2:", "let value: [String: Int] = [:]", "SELECT * FROM users WHERE id = 1;",
    "<div class=\"a\">text</div>", "{\"key\": [1, 2, 3], \"b\": null}", "```swift\nprint(1)\n```",
    "    indented four", "\t\tindented tabs", "x=1;y=2", "a==b", "a!=b", "a->b", "a=>b", "i++", "--flag",
    "snake_case_name", "camelCaseName", "PascalCaseName", "kebab-case-name", "SCREAMING_CASE",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>",
    "text <|im_end|> more", "<|im_start|><|im_end|>", "<|im_start", "im_end|>", "<|fake|>",
    "Hypertension", "hypoglycemia", "antihistamine", "acetylsalicylic acid", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Symptoms: fever, cough, fatigue.", "Allergies: penicillin (rash); latex.", "Dx: T2DM, HTN, HLD.",
    "q.i.d. p.r.n. b.i.d.", "mg/dL", "mL/kg/h", "µg", "μmol/L", "≥ 140/90", "≤ 5", "±2",
    "Once upon a time,\nthere was a patient\nwho asked questions.",
    "Line one.\n\n\nLine four.", "word\u00a0nbsp", "zero\u200bwidth", "soft\u00adhyphen", "ideographic\u3000space",
]

WORDS = ["health", "Doctor", "medicine", "pain", "sleep", "water", "fever", "heart", "blood", "test",
         "día", "niño", "über", "ça", "日本", "😀", "42", "3.5", "x", "I'll"]
SEPARATORS = [" ", "  ", "\n", ", ", " - ", "\t", "", ". ", "!\n", " \n\n "]


def corpus():
    strings = list(BASE_STRINGS)
    # Deterministic combinations: word pairs and triples with varied separators.
    for i in range(len(WORDS)):
        for j in range(0, len(WORDS), 3):
            a, b = WORDS[i], WORDS[(i + j + 1) % len(WORDS)]
            sep = SEPARATORS[(i * 7 + j) % len(SEPARATORS)]
            strings.append(a + sep + b)
    for n in range(1, 12):
        strings.append(" " * n + "x")
        strings.append("x" + " " * n)
        strings.append("7" * n)
    seen, unique = set(), []
    for s in strings:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


TEACHER_TEXT = (
    "<|im_start|>system\nYou are a helpful health companion. You explain clearly and you are careful.<|im_end|>\n"
    "<|im_start|>user\nWhat is high blood pressure and how can I lower it?<|im_end|>\n"
    "<|im_start|>assistant\nHigh blood pressure, also called hypertension, means that the force of blood against "
    "the walls of your arteries is consistently too high. Over time it can damage the heart, the kidneys and the "
    "brain. A reading of 130/80 mmHg or more is usually considered high. You can lower it by eating less salt, "
    "eating more vegetables, fruit and whole grains, staying active for about 150 minutes a week, limiting alcohol, "
    "not smoking, keeping a healthy weight and sleeping well. Some people also need medicines such as ACE "
    "inhibitors, diuretics or calcium channel blockers; your doctor will choose one that fits you.<|im_end|>\n"
    "<|im_start|>user\nI also get headaches in the morning. Should I worry?<|im_end|>\n"
    "<|im_start|>assistant\nMorning headaches have many causes: poor sleep, sleep apnea, dehydration, caffeine "
    "withdrawal, teeth grinding or, rarely, very high blood pressure. Keep a diary for one week: when the headache "
    "starts, how strong it is from 1 to 10, how long you slept, and what you drank the evening before. If a headache "
    "is sudden and severe, comes with weakness, confusion, trouble speaking or a stiff neck, call emergency services "
    "at once. Otherwise, bring your diary to your next appointment.<|im_end|>\n"
    "The mitochondria is the powerhouse of the cell. Photosynthesis converts light into chemical energy. In 1928, "
    "Alexander Fleming discovered penicillin; it changed medicine forever. def mean(xs):\n    return sum(xs) / len(xs)\n"
    "Les médecins recommandent de boire de l'eau. 健康は大切です。 Stay safe! 😀\n"
)

CHAT_PROMPTS = [
    ("You are a helpful assistant.", "What is the capital of France?"),
    ("You are a helpful assistant.", "Write a haiku about the sea."),
    ("You are a careful health companion. You are not a doctor.", "I have a mild headache. What can I do at home?"),
    ("You are a careful health companion. You are not a doctor.", "How much water should I drink each day?"),
    ("You are a helpful assistant.", "List three fruits."),
    ("You are a helpful assistant.", "Explain what a fever is in one sentence."),
    ("You are a helpful assistant.", "Count from 1 to 10."),
    ("You are a helpful assistant.", "Translate 'good morning' into Spanish."),
]


def chatml(system, user):
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default=FIXTURES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--greedy-tokens", type=int, default=32)
    parser.add_argument("--compare", help="fixtures from another llama.cpp build to compare with")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    llm = Llama(model_path=args.model, n_ctx=2048, n_threads=args.threads, n_batch=512, logits_all=True, verbose=False)
    # The token-by-token path: every evaluation is a batch of one.
    single = Llama(model_path=args.model, n_ctx=2048, n_threads=args.threads, n_batch=1, n_ubatch=1, logits_all=True, verbose=False)
    build = {"llama_cpp_python": llama_cpp.__version__, "system_info": llama_cpp.llama_print_system_info().decode().strip()}
    eog = {llm.token_eos()}
    for text in ("<|im_end|>", "<|endoftext|>"):
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        if len(ids) == 1:
            eog.add(ids[0])

    cases = []
    for text in corpus():
        raw = text.encode("utf-8")
        cases.append({
            "text": text,
            "ids": llm.tokenize(raw, add_bos=False, special=False),
            "special_ids": llm.tokenize(raw, add_bos=False, special=True),
        })
    write(args.out, "tokenizer.json", {"source": "llama.cpp via llama-cpp-python", "cases": cases})

    tokens = llm.tokenize(TEACHER_TEXT.encode("utf-8"), add_bos=False, special=True)
    llm.reset()
    llm.eval(tokens)
    top1 = [int(i) for i in np.array(llm.scores[: len(tokens)]).argmax(axis=1)]
    single.reset()
    top1_one_by_one = []
    for token in tokens:
        single.eval([token])
        top1_one_by_one.append(int(np.argmax(single.scores[single.n_tokens - 1])))
    write(args.out, "teacher_forced.json", {"source": "llama.cpp via llama-cpp-python", "build": build, "tokens": tokens,
                                            "top1": top1, "top1_one_by_one": top1_one_by_one})
    same = sum(a == b for a, b in zip(top1, top1_one_by_one))
    print(f"llama.cpp batched vs token by token, teacher-forced top-1: {same}/{len(tokens)} = {100 * same / len(tokens):.2f}%", file=sys.stderr)

    def continuation(model, prompt, batched):
        model.reset()
        if batched:
            model.eval(prompt)
        else:
            for token in prompt:
                model.eval([token])
        out = []
        for _ in range(args.greedy_tokens):
            token = int(np.argmax(model.scores[model.n_tokens - 1]))
            out.append(token)
            if token in eog:
                break
            model.eval([token])
        return out

    greedy = []
    for system, user in CHAT_PROMPTS:
        prompt = llm.tokenize(chatml(system, user).encode("utf-8"), add_bos=False, special=True)
        greedy.append({"system": system, "user": user, "prompt_ids": prompt, "continuation": continuation(llm, prompt, True),
                       "continuation_one_by_one": continuation(single, prompt, False)})
    write(args.out, "greedy.json", {"source": "llama.cpp via llama-cpp-python", "build": build, "cases": greedy})
    same = sum(c["continuation"] == c["continuation_one_by_one"] for c in greedy)
    print(f"llama.cpp batched vs token by token, identical greedy continuations: {same}/{len(greedy)}", file=sys.stderr)
    print(f"wrote {len(cases)} tokenizer cases, {len(tokens)} teacher-forced positions, {len(greedy)} greedy prompts to {args.out}", file=sys.stderr)
    if args.compare:
        compare(args.out, args.compare)


def compare(ours_dir, other_dir):
    """Prints how the fixtures in two directories (two llama.cpp builds) agree."""
    def load(directory, name):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            return json.load(f)
    a, b = load(ours_dir, "teacher_forced.json"), load(other_dir, "teacher_forced.json")
    for key in ("top1", "top1_one_by_one"):
        same = sum(x == y for x, y in zip(a[key], b[key]))
        print(f"this build vs {other_dir}, teacher-forced {key}: {same}/{len(a[key])} = {100 * same / len(a[key]):.2f}%", file=sys.stderr)
    a, b = load(ours_dir, "greedy.json"), load(other_dir, "greedy.json")
    for key in ("continuation", "continuation_one_by_one"):
        same = sum(x[key] == y[key] for x, y in zip(a["cases"], b["cases"]))
        print(f"this build vs {other_dir}, identical greedy {key}: {same}/{len(a['cases'])}", file=sys.stderr)


def write(directory, name, value):
    with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
