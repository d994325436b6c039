"""The official OpenAI Python client through `telemetry proxy` to a real llama.cpp server.

`calls PROXY_URL DIRECT_URL MODEL OUT.json`: blocking, streaming with and without usage, and an
invalid request through the proxy (each tagged with its own X-Telemetry-Agent), then the latency
of N blocking calls direct vs through the proxy, interleaved. Writes what the client saw.

`verify DB OUT.json`: the proxy's records (read from the SQLite file) equal what the client saw.
"""
import json
import sqlite3
import statistics
import sys
import time

def calls(proxy, direct, model, out, n):
    from openai import OpenAI, BadRequestError

    through = OpenAI(base_url=proxy + "/v1", api_key="none", max_retries=0)
    straight = OpenAI(base_url=direct + "/v1", api_key="none", max_retries=0)
    messages = [{"role": "user", "content": "Name three rivers in Europe."}]
    extra = {"cache_prompt": False}
    seen = {}

    r = through.chat.completions.create(
        model=model, messages=messages, max_tokens=24, temperature=0, extra_body=extra,
        extra_headers={"X-Telemetry-Agent": "py-blocking"})
    seen["py-blocking"] = {"prompt": r.usage.prompt_tokens, "completion": r.usage.completion_tokens,
                           "model": r.model, "text": r.choices[0].message.content}
    print(f"blocking   model={r.model} usage={r.usage.prompt_tokens}+{r.usage.completion_tokens} "
          f"text={r.choices[0].message.content!r}")

    for agent, include in (("py-stream-usage", True), ("py-stream-plain", False)):
        kwargs = {"stream_options": {"include_usage": True}} if include else {}
        stream = through.chat.completions.create(
            model=model, messages=messages, max_tokens=24, temperature=0, stream=True,
            extra_body=extra, extra_headers={"X-Telemetry-Agent": agent}, **kwargs)
        text, chunks, usage, first, t0 = [], 0, None, None, time.perf_counter()
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta.content:
                    if first is None:
                        first = time.perf_counter() - t0
                    chunks += 1
                    text.append(choice.delta.content)
        entry = {"chunks": chunks, "text": "".join(text), "ttft_s": first}
        if usage is not None:
            entry.update(prompt=usage.prompt_tokens, completion=usage.completion_tokens)
        seen[agent] = entry
        print(f"stream     agent={agent} include_usage={include} content_chunks={chunks} "
              f"usage={'%d+%d' % (usage.prompt_tokens, usage.completion_tokens) if usage else None} "
              f"client_ttft={first * 1e3:.1f}ms text={''.join(text)!r}")

    try:
        through.chat.completions.create(
            model=model, messages=messages, max_tokens=4,
            extra_body={"response_format": {"type": "bogus"}},
            extra_headers={"X-Telemetry-Agent": "py-invalid"})
        raise SystemExit("a bogus response_format was accepted")
    except BadRequestError as e:
        seen["py-invalid"] = {"status": e.status_code, "message": str(e)}
        print(f"invalid    HTTP {e.status_code}: {e}")

    times = {"direct": [], "proxy": []}
    for i in range(n):
        for name, client in (("direct", straight), ("proxy", through)) if i % 2 == 0 else \
                (("proxy", through), ("direct", straight)):
            t0 = time.perf_counter()
            client.chat.completions.create(
                model=model, messages=messages, max_tokens=16, temperature=0, extra_body=extra,
                extra_headers={"X-Telemetry-Agent": "py-latency"})
            times[name].append(time.perf_counter() - t0)
    d, p = statistics.median(times["direct"]), statistics.median(times["proxy"])
    seen["latency"] = {"direct_median_s": d, "proxy_median_s": p, "calls": n}
    print(f"latency    {n} blocking calls each, interleaved: median direct {d * 1e3:.1f} ms, "
          f"through the proxy {p * 1e3:.1f} ms ({(p / d - 1) * 100:+.2f} %)")
    with open(out, "w") as f:
        json.dump(seen, f)

def verify(db, out):
    seen = json.load(open(out))
    conn = sqlite3.connect(db)
    rows = {}
    for agent, model, prompt, completion, counted, outcome, kind, msg, streaming, ttft, prefill in conn.execute(
            "SELECT agent, model_id, prompt_tokens, completion_tokens, tokens_counted, outcome, "
            "error_kind, error_message, is_streaming, ttft, server_prefill_ms FROM telemetry"):
        rows.setdefault(agent, []).append(dict(model=model, prompt=prompt, completion=completion,
            counted=counted, outcome=outcome, kind=kind, msg=msg, streaming=streaming, ttft=ttft,
            prefill=prefill))
    problems = []
    def check(what, ok):
        print(("ok      " if ok else "FAILED  ") + what)
        if not ok:
            problems.append(what)
    for agent in ("py-blocking", "py-stream-usage"):
        [r] = rows[agent]
        s = seen[agent]
        check(f"{agent}: record tokens {r['prompt']}+{r['completion']} == server usage "
              f"{s['prompt']}+{s['completion']}, not counted",
              (r["prompt"], r["completion"], r["counted"]) == (s["prompt"], s["completion"], 0))
        check(f"{agent}: outcome ok, server prefill {r['prefill']} ms recorded",
              r["outcome"] == "ok" and r["prefill"] is not None)
    r = rows["py-blocking"][0]
    check(f"py-blocking: record model {r['model']!r} == response model {seen['py-blocking']['model']!r}",
          r["model"] == seen["py-blocking"]["model"])
    [r] = rows["py-stream-usage"]
    check(f"py-stream-usage: streaming, TTFT {r['ttft']:.4f} s >= server prefill {r['prefill']:.1f} ms",
          r["streaming"] == 1 and r["ttft"] is not None and r["ttft"] * 1e3 >= r["prefill"])
    [r] = rows["py-stream-plain"]
    s = seen["py-stream-plain"]
    check(f"py-stream-plain (no usage sent): counted {r['completion']} == content chunks the client "
          f"saw {s['chunks']}", r["counted"] == 1 and r["completion"] == s["chunks"])
    [r] = rows["py-invalid"]
    check(f"py-invalid: recorded {r['outcome']}/{r['kind']}: {r['msg']}",
          r["outcome"] == "error" and r["kind"] == "http_400" and "response_format" in r["msg"])
    n = seen["latency"]["calls"]
    check(f"py-latency: {len(rows.get('py-latency', []))} records for {n} calls through the proxy",
          len(rows.get("py-latency", [])) == n)
    if problems:
        raise SystemExit(f"{len(problems)} check(s) failed")

if __name__ == "__main__":
    if sys.argv[1] == "calls":
        calls(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    else:
        verify(sys.argv[2], sys.argv[3])
