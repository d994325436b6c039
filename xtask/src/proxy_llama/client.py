"""The official OpenAI and Anthropic Python SDKs through `telemetry proxy` to real llama.cpp servers.

`calls PROXY_URL CHAT_URL EMBED_URL MODEL EMBED_MODEL OUT.json N`: one call per API x mode through
the proxy (each tagged with its own X-Telemetry-Agent), reading each server's /metrics before and
after every call, then an invalid request, then the latency of N blocking calls direct vs through
the proxy, interleaved. Writes what the SDKs returned and what the servers' counters moved.

`verify DB OUT.json TABLE.txt ASSERTED`: the proxy's records (read from the SQLite file) against the
SDKs' usage and the servers' counters; prints and writes the table API x mode; fails on a mismatch
in a row whose API is in ASSERTED (comma-separated API names, or `all`).
"""
import json
import sqlite3
import statistics
import sys
import time
import urllib.error
import urllib.request

# (agent, API name as the record stores it, mode, SDK): the calls whose tokens are checked.
ROWS = [
    ("chat-blocking", "openai_chat", "blocking", "openai"),
    ("chat-stream-usage", "openai_chat", "stream + include_usage", "openai"),
    ("chat-stream-plain", "openai_chat", "stream, no usage asked", "openai"),
    ("completions-blocking", "openai_completions", "blocking", "openai"),
    ("completions-stream", "openai_completions", "stream", "openai"),
    ("responses-blocking", "openai_responses", "blocking", "openai"),
    ("responses-stream", "openai_responses", "stream", "openai"),
    ("messages-blocking", "anthropic_messages", "blocking", "anthropic"),
    ("messages-stream", "anthropic_messages", "stream", "anthropic"),
    ("embeddings", "openai_embeddings", "blocking", "openai"),
]
OPERATION = {"openai_chat": "chat", "openai_completions": "text_completion",
             "openai_responses": "chat", "anthropic_messages": "chat",
             "openai_embeddings": "embeddings"}
# The llama.cpp counters read around each call (prompt_tokens_total counts the prompt tokens it
# evaluated, prompt_tokens_cached_total those it reused from the KV cache).
COUNTERS = ("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total",
            "llamacpp:tokens_predicted_total")


def metrics(url):
    """The llama.cpp server's counters (GET /metrics, needs --metrics)."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in COUNTERS:
            values[name] = int(float(value))
    missing = [c for c in COUNTERS if c not in values]
    if missing:
        raise SystemExit(f"{url}/metrics lacks {missing}: is the server started with --metrics?")
    return values


def delta(before, after):
    d = {c: after[c] - before[c] for c in COUNTERS}
    return {"prompt": d["llamacpp:prompt_tokens_total"] + d["llamacpp:prompt_tokens_cached_total"],
            "cached": d["llamacpp:prompt_tokens_cached_total"],
            "completion": d["llamacpp:tokens_predicted_total"]}


def attr(obj, *path):
    """obj.a.b... or None where a step is missing or None."""
    for name in path:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def openai_usage(u):
    """Chat Completions / Completions / Embeddings usage as the SDK returned it."""
    return {"prompt": u.prompt_tokens, "completion": getattr(u, "completion_tokens", None) or 0,
            "cached": attr(u, "prompt_tokens_details", "cached_tokens") or 0}


def responses_usage(u):
    return {"prompt": u.input_tokens, "completion": u.output_tokens,
            "cached": attr(u, "input_tokens_details", "cached_tokens") or 0,
            "reasoning": attr(u, "output_tokens_details", "reasoning_tokens") or 0}


def messages_usage(u):
    # Anthropic's input_tokens exclude the cache reads and writes; the record's prompt includes them.
    read = u.cache_read_input_tokens or 0
    write = u.cache_creation_input_tokens or 0
    return {"prompt": u.input_tokens + read + write, "completion": u.output_tokens,
            "cached": read, "cache_write": write}


def calls(proxy, chat_url, embed_url, model, embed_model, out, n):
    from openai import APIStatusError, BadRequestError, OpenAI
    from anthropic import Anthropic

    through = OpenAI(base_url=proxy + "/v1", api_key="none", max_retries=0)
    straight = OpenAI(base_url=chat_url + "/v1", api_key="none", max_retries=0)
    claude = Anthropic(base_url=proxy, api_key="none", max_retries=0)
    messages = [{"role": "user", "content": "Name three rivers in Europe."}]
    # A fresh prompt evaluation for every call (Messages ignores it: llama.cpp reuses the KV
    # cache there and reports the reuse as cache_read_input_tokens, which the check covers).
    extra = {"cache_prompt": False, "temperature": 0}
    seen = {"rows": {}}

    def tag(agent):
        return {"X-Telemetry-Agent": agent}

    def one(agent, server, call):
        """Runs call() between two reads of the server's counters."""
        before = metrics(server)
        t0 = time.perf_counter()
        entry = call()
        entry["client_s"] = time.perf_counter() - t0
        entry["server"] = delta(before, metrics(server))
        seen["rows"][agent] = entry
        u = entry.get("usage")
        print(f"{agent:<21} usage={'%d+%d' % (u['prompt'], u['completion']) if u else None} "
              f"server={entry['server']['prompt']}+{entry['server']['completion']} "
              f"chunks={entry.get('chunks')} text={entry.get('text', '')[:60]!r}")

    def chat_blocking():
        r = through.chat.completions.create(model=model, messages=messages, max_tokens=24,
                                            extra_body=extra, extra_headers=tag("chat-blocking"))
        return {"usage": openai_usage(r.usage), "model": r.model, "text": r.choices[0].message.content}

    def chunk_shape(chunk):
        """What a client can see of a chunk, less the values that change per call (id, created,
        timings' numbers): its keys, its choices' deltas and finish reasons, its usage."""
        d = chunk.to_dict()
        return [sorted(d.keys()),
                [[c.get("finish_reason"), c.get("delta")] for c in d.get("choices", [])],
                d.get("usage")]

    def chat_stream(agent, include, client=None):
        def go():
            kwargs = {"stream_options": {"include_usage": True}} if include else {}
            stream = (client or through).chat.completions.create(
                model=model, messages=messages, max_tokens=24, stream=True, extra_body=extra,
                extra_headers=tag(agent), **kwargs)
            text, chunks, usage, shapes, usage_chunks = [], 0, None, [], 0
            for chunk in stream:
                shapes.append(chunk_shape(chunk))
                if chunk.usage is not None:
                    usage = openai_usage(chunk.usage)
                if not chunk.choices:
                    usage_chunks += 1
                for choice in chunk.choices:
                    if choice.delta.content:
                        chunks += 1
                        text.append(choice.delta.content)
            return {"usage": usage, "chunks": chunks, "text": "".join(text), "shapes": shapes,
                    "usage_chunks": usage_chunks}
        return go

    def completions_blocking():
        r = through.completions.create(model=model, prompt="The three longest rivers in Europe are",
                                       max_tokens=16, extra_body=extra,
                                       extra_headers=tag("completions-blocking"))
        return {"usage": openai_usage(r.usage), "text": r.choices[0].text}

    def completions_stream():
        # No stream_options: llama.cpp sends usage in a Completions stream's last chunk anyway.
        stream = through.completions.create(model=model, prompt="The three longest rivers in Europe are",
                                            max_tokens=16, stream=True, extra_body=extra,
                                            extra_headers=tag("completions-stream"))
        text, chunks, usage = [], 0, None
        for chunk in stream:
            if chunk.usage is not None:
                usage = openai_usage(chunk.usage)
            for choice in chunk.choices:
                if choice.text:
                    chunks += 1
                    text.append(choice.text)
        return {"usage": usage, "chunks": chunks, "text": "".join(text)}

    def responses_blocking():
        r = through.responses.create(model=model, input="Name three rivers in Europe.",
                                     max_output_tokens=16, extra_body=extra,
                                     extra_headers=tag("responses-blocking"))
        return {"usage": responses_usage(r.usage), "model": r.model, "text": r.output_text}

    def responses_stream():
        stream = through.responses.create(model=model, input="Name three rivers in Europe.",
                                          max_output_tokens=16, stream=True, extra_body=extra,
                                          extra_headers=tag("responses-stream"))
        text, chunks, usage = [], 0, None
        for event in stream:
            if event.type == "response.output_text.delta":
                chunks += 1
                text.append(event.delta)
            elif event.type == "response.completed":
                usage = responses_usage(event.response.usage)
        return {"usage": usage, "chunks": chunks, "text": "".join(text)}

    def messages_blocking():
        r = claude.messages.create(model=model, messages=messages, max_tokens=16, extra_body=extra,
                                   extra_headers=tag("messages-blocking"))
        return {"usage": messages_usage(r.usage), "model": r.model,
                "text": "".join(b.text for b in r.content if b.type == "text")}

    def messages_stream():
        chunks, text = 0, []
        with claude.messages.stream(model=model, messages=messages, max_tokens=16, extra_body=extra,
                                    extra_headers=tag("messages-stream")) as stream:
            for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    chunks += 1
                    text.append(event.delta.text)
            final = stream.get_final_message()
        return {"usage": messages_usage(final.usage), "chunks": chunks, "text": "".join(text)}

    def embeddings():
        try:
            r = through.embeddings.create(model=embed_model, input=["Danube", "Rhine and Volga"],
                                          extra_headers=tag("embeddings"))
        except APIStatusError as e:
            # Reported (and failed where embeddings are asserted) by verify.
            return {"usage": None, "error": f"HTTP {e.status_code}: {e.message}"}
        return {"usage": openai_usage(r.usage), "vectors": len(r.data),
                "text": f"{len(r.data)} vectors of {len(r.data[0].embedding)}"}

    start = {"chat": metrics(chat_url), "embed": metrics(embed_url)}
    one("chat-blocking", chat_url, chat_blocking)
    one("chat-stream-usage", chat_url, chat_stream("chat-stream-usage", True))
    one("chat-stream-plain", chat_url, chat_stream("chat-stream-plain", False))
    one("completions-blocking", chat_url, completions_blocking)
    one("completions-stream", chat_url, completions_stream)
    one("responses-blocking", chat_url, responses_blocking)
    one("responses-stream", chat_url, responses_stream)
    one("messages-blocking", chat_url, messages_blocking)
    one("messages-stream", chat_url, messages_stream)
    one("embeddings", embed_url, embeddings)

    try:
        through.chat.completions.create(
            model=model, messages=messages, max_tokens=4,
            extra_body={"response_format": {"type": "bogus"}},
            extra_headers=tag("py-invalid"))
        raise SystemExit("a bogus response_format was accepted")
    except BadRequestError as e:
        seen["py-invalid"] = {"status": e.status_code, "message": str(e)}
        print(f"invalid               HTTP {e.status_code}: {e}")
    seen["window"] = {"chat": delta(start["chat"], metrics(chat_url)),
                      "embed": delta(start["embed"], metrics(embed_url))}
    w = seen["window"]
    print(f"server counters over these calls: chat server {w['chat']['prompt']} prompt "
          f"({w['chat']['cached']} from its cache) + {w['chat']['completion']} predicted; "
          f"embeddings server {w['embed']['prompt']} prompt")

    # Streams the proxy asked usage for: the Chat and Completions streams without include_usage.
    try:
        with urllib.request.urlopen(proxy + "/telemetry/health", timeout=30) as r:
            seen["proxy_counters"] = json.load(r)["proxy"]
    except urllib.error.HTTPError as e:  # 503 when degraded: the same JSON
        seen["proxy_counters"] = json.load(e)["proxy"]
    # The plain stream as llama.cpp gives it without the proxy (after the counters' window).
    seen["direct-plain"] = chat_stream("direct-plain", False, straight)()

    times = {"direct": [], "proxy": []}
    for i in range(n):
        for name, client in (("direct", straight), ("proxy", through)) if i % 2 == 0 else \
                (("proxy", through), ("direct", straight)):
            t0 = time.perf_counter()
            client.chat.completions.create(
                model=model, messages=messages, max_tokens=16, extra_body=extra,
                extra_headers=tag("py-latency"))
            times[name].append(time.perf_counter() - t0)
    d, p = statistics.median(times["direct"]), statistics.median(times["proxy"])
    seen["latency"] = {"direct_median_s": d, "proxy_median_s": p, "calls": n}
    print(f"latency               {n} blocking calls each, interleaved: median direct "
          f"{d * 1e3:.1f} ms, through the proxy {p * 1e3:.1f} ms ({(p / d - 1) * 100:+.2f} %)")
    with open(out, "w") as f:
        json.dump(seen, f)


def verify(db, out, table_path, asserted):
    seen = json.load(open(out))
    conn = sqlite3.connect(db)
    # Schema V5 stores a repeated text once and puts its id in the row: the view
    # telemetry_records shows every row with its texts (files before V5 have only the table).
    views = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    table = "telemetry_records" if "telemetry_records" in views else "telemetry"
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    optional = [c for c in ("api", "operation", "output_chunks", "reasoning_tokens",
                            "prompt_tokens_cache_write") if c in have]
    columns = ["agent", "model_id", "prompt_tokens", "completion_tokens", "prompt_tokens_cached",
               "tokens_counted", "outcome", "error_kind", "error_message", "is_streaming", "ttft",
               "server_prefill_ms"] + optional
    rows = {}
    for values in conn.execute(f"SELECT {', '.join(columns)} FROM {table}"):
        r = dict(zip(columns, values))
        rows.setdefault(r["agent"], []).append(r)
    every = asserted == ["all"]

    def asserted_row(agent, api):
        return every or api in asserted or agent in asserted

    problems = []

    def check(what, ok, assert_it=True):
        print(("ok      " if ok else "FAILED  " if assert_it else "(not asserted) differs: ") + what)
        if not ok and assert_it:
            problems.append(what)

    def tokens(d):
        return f"{d['prompt']}+{d['completion']}" + (f" ({d['cached']} cached)" if d.get("cached") else "")

    lines = [f"{'API':<19} {'mode':<23} {'recorded':<18} {'SDK usage':<18} {'server delta':<18} asserted",
             "-" * 108]
    recorded_completion = 0
    for agent, api, mode, _sdk in ROWS:
        s = seen["rows"][agent]
        on = asserted_row(agent, api)
        got = rows.get(agent, [])
        if "error" in s:
            check(f"{agent}: the call failed: {s['error']}", False, on)
            lines.append(f"{api:<19} {mode:<23} {'(call failed)':<18} {'-':<18} "
                         f"{tokens(s['server']):<18} {'yes' if on else 'no'}")
            continue
        check(f"{agent}: {len(got)} record(s) for 1 call", len(got) == 1, on)
        if len(got) != 1:
            lines.append(f"{api:<19} {mode:<23} {'(' + str(len(got)) + ' records)':<18} "
                         f"{tokens(s['usage']) if s['usage'] else '-':<18} {tokens(s['server']):<18} {'yes' if on else 'no'}")
            continue
        r = got[0]
        recorded_completion += r["completion_tokens"]
        rec = {"prompt": r["prompt_tokens"], "completion": r["completion_tokens"],
               "cached": r["prompt_tokens_cached"]}
        # What the call should have recorded: the SDK's usage, or the server's counters where the
        # client asked for no usage (the server's counter then is the truth).
        want = s["usage"] if s["usage"] is not None else s["server"]
        source = "SDK usage" if s["usage"] is not None else "server counters (no usage sent)"
        lines.append(f"{api:<19} {mode:<23} {tokens(rec):<18} "
                     f"{tokens(s['usage']) if s['usage'] else '(none asked)':<18} {tokens(s['server']):<18} {'yes' if on else 'no'}")
        check(f"{agent}: recorded {tokens(rec)} == {source} {tokens(want)}",
              (rec["prompt"], rec["completion"], rec["cached"]) ==
              (want["prompt"], want["completion"], want.get("cached", 0)), on)
        check(f"{agent}: recorded {tokens(rec)} == server counters {tokens(s['server'])}",
              (rec["prompt"], rec["completion"], rec["cached"]) ==
              (s["server"]["prompt"], s["server"]["completion"], s["server"]["cached"]), on)
        check(f"{agent}: server's own tokens, not counted (tokens_counted={r['tokens_counted']}), "
              f"outcome {r['outcome']}", r["tokens_counted"] == 0 and r["outcome"] == "ok", on)
        streaming = "stream" in mode
        check(f"{agent}: is_streaming={r['is_streaming']}", r["is_streaming"] == int(streaming), on)
        if "api" in r:
            check(f"{agent}: api {r['api']!r}, operation {r['operation']!r}",
                  (r["api"], r["operation"]) == (api, OPERATION[api]), on)
        if streaming and "output_chunks" in r:
            check(f"{agent}: output_chunks {r['output_chunks']} == text deltas the client saw "
                  f"{s['chunks']}", r["output_chunks"] == s["chunks"], on)
        if streaming and api != "openai_embeddings":
            check(f"{agent}: TTFT {r['ttft']} s >= server prefill {r['server_prefill_ms']} ms",
                  r["ttft"] is not None and r["ttft"] * 1e3 >= (r["server_prefill_ms"] or 0), on)
        if "model" in s:
            check(f"{agent}: record model {r['model_id']!r} == response model {s['model']!r}",
                  r["model_id"] == s["model"], on)
        if "reasoning_tokens" in r:
            check(f"{agent}: reasoning {r['reasoning_tokens']}, cache write "
                  f"{r['prompt_tokens_cache_write']} == SDK {s['usage'].get('reasoning', 0) if s['usage'] else 0}, "
                  f"{s['usage'].get('cache_write', 0) if s['usage'] else 0}",
                  (r["reasoning_tokens"], r["prompt_tokens_cache_write"]) ==
                  ((s["usage"] or {}).get("reasoning", 0), (s["usage"] or {}).get("cache_write", 0)), on)
    counters = seen.get("proxy_counters", {})
    if "usage_asked" in counters:
        check(f"the proxy asked the server for usage on the 2 streams sent without it "
              f"(usage_asked {counters['usage_asked']}, usage_refused {counters['usage_refused']})",
              (counters["usage_asked"], counters["usage_refused"]) == (2, 0),
              asserted_row("chat-stream-plain", "openai_chat"))
    plain, direct = seen["rows"].get("chat-stream-plain", {}), seen.get("direct-plain")
    if "shapes" in plain and direct:
        on = asserted_row("chat-stream-plain", "openai_chat")
        check(f"chat-stream-plain: the SDK saw no usage (usage {plain['usage']}, "
              f"{plain['usage_chunks']} chunks without choices) though the proxy asked for it",
              plain["usage"] is None and plain["usage_chunks"] == 0, on)
        check(f"chat-stream-plain: the SDK's {len(plain['shapes'])} chunks through the proxy == "
              f"the {len(direct['shapes'])} it gets from llama.cpp directly (keys, deltas, finish "
              f"reasons, usage)", plain["shapes"] == direct["shapes"], on)
        if plain["shapes"] != direct["shapes"]:
            print("  through the proxy:", json.dumps(plain["shapes"][-3:]))
            print("  directly:         ", json.dumps(direct["shapes"][-3:]))
    invalid = rows.get("py-invalid", [])
    inv = invalid[0] if len(invalid) == 1 else None
    check(f"py-invalid: one record, error/http_400 with the server's message: "
          f"{[(r['outcome'], r['error_kind'], r['error_message']) for r in invalid]}",
          inv is not None and inv["outcome"] == "error" and inv["error_kind"] == "http_400"
          and "response_format" in inv["error_message"])
    recorded_completion += inv["completion_tokens"] if inv else 0
    w = seen["window"]
    server_completion = w["chat"]["completion"] + w["embed"]["completion"]
    lines.append("-" * 108)
    lines.append(f"sum of recorded output tokens {recorded_completion}; servers' "
                 f"llamacpp:tokens_predicted_total delta {server_completion} "
                 f"(chat server {w['chat']['completion']}, embeddings server {w['embed']['completion']})")
    check(f"sum of recorded output tokens {recorded_completion} == tokens_predicted_total delta "
          f"{server_completion}", recorded_completion == server_completion)
    n = seen["latency"]["calls"]
    check(f"py-latency: {len(rows.get('py-latency', []))} records for {n} calls through the proxy",
          len(rows.get("py-latency", [])) == n)
    table = "\n".join(lines) + "\n"
    with open(table_path, "w") as f:
        f.write(table)
    print()
    print(table, end="")
    if problems:
        raise SystemExit(f"{len(problems)} check(s) failed (table above)")


if __name__ == "__main__":
    if sys.argv[1] == "calls":
        calls(*sys.argv[2:8], int(sys.argv[8]))
    else:
        verify(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split(","))
