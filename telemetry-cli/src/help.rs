//! `--help` texts: what each command does beyond its options, and examples.

/// Shown after the options of `telemetry --help`.
pub const EXAMPLES: &str = "\
Database: --db PATH, else $TELEMETRY_DB, else $XDG_DATA_HOME/telemetry/telemetry.db,
else ~/.local/share/telemetry/telemetry.db.

Examples:
  telemetry demo                          record 2000 simulated calls, then show stats
  telemetry stats --since 1h --by engine  the last hour, grouped by engine
  telemetry stats --format json | jq .total_calls
  telemetry series --bucket 1h --by model --format csv
  telemetry export --format ndjson -o calls.ndjson
  telemetry prune --older-than 30d --yes
  telemetry check
  telemetry serve --listen 127.0.0.1:9464   Prometheus metrics at /metrics
  telemetry proxy --upstream http://127.0.0.1:8080   record every call to an OpenAI-compatible server";

/// Shown after the options of `telemetry demo --help`.
pub const DEMO_EXAMPLES: &str = "\
Timing: by default calls run instantly with synthetic, realistic timings (SimulatedEngine in
instant mode), so 2000 calls take about a second. --realtime makes the engine sleep for real.

GPU energy (--gpu): `mock` replays a scripted 180-690 W power trace of a mock H100 (on the
simulated clock in instant mode, where calls take turns so each call's window is its own; on the
real clock with --realtime). `nvml` reads the real GPU through NVML and needs --realtime, since
instant calls take no real time. `auto` (default) uses NVML with --realtime when a GPU is
present, else the mock. `off` records no energy. Energy of overlapping calls is shared among
them. The output says which engine and which GPU source produced the numbers.

Examples:
  telemetry demo
  telemetry demo --calls 500 --models 2 --stream
  telemetry demo --realtime --calls 50 --gpu nvml
  telemetry --db /tmp/demo.db demo --gpu off
  telemetry demo --calls 200 --stream --otlp http://127.0.0.1:4318   (also to an OTLP collector)";

/// Shown after the options of `telemetry stats --help`.
pub const STATS_EXAMPLES: &str = "\
Times (--since/--until) take RFC 3339 (2026-11-28T04:00:00Z), unix seconds (1764302400) or a
duration before now (90s, 15m, 2h, 7d); both bounds are inclusive.

--format json prints telemetry_agg::AggregatedStats as documented in docs/cli.md: totals,
error_count, percentiles (latency_p50.. in seconds, itl_p50.. in ms), energy ratios, and the
per_model / per_engine lists (cut to --top N when given).

Examples:
  telemetry stats
  telemetry stats --since 1h --by engine
  telemetry stats --since 2026-11-01T00:00:00Z --until 2026-11-02T00:00:00Z --top 5
  telemetry stats --format json";

/// Shown after the options of `telemetry series --help`.
pub const SERIES_EXAMPLES: &str = "\
Examples:
  telemetry series --bucket 1h
  telemetry series --bucket 1m --since 30m --by model
  telemetry series --bucket 1d --format csv > daily.csv";

/// Shown after the options of `telemetry report --help`.
pub const REPORT_EXAMPLES: &str = "\
One HTML file: inline CSS and SVG charts, nothing fetched, readable without JavaScript. Built from
the database's summaries (never raw rows), so it stays fast on millions of records.

Examples:
  telemetry report                          # writes telemetry-report.html
  telemetry report --since 7d --by engine -o week.html
  telemetry report --bucket 1h --since 2025-11-01 --until 2025-11-02";

/// Shown after the options of `telemetry export --help`.
pub const EXPORT_EXAMPLES: &str = "\
Fields are those of the `telemetry` table (one per TelemetryRecord field); CSV writes them in
table order with metadata as JSON text. Progress shows when writing to a file from a terminal.

Examples:
  telemetry export > all.json
  telemetry export --format ndjson --since 1d -o today.ndjson
  telemetry export --format csv -o calls.csv
  telemetry export --format otlp --since 7d --endpoint http://collector:4318";

/// Shown after the options of `telemetry prune --help`.
pub const PRUNE_EXAMPLES: &str = "\
Without --yes, asks for confirmation on a terminal and refuses (exit 2) otherwise.

Deletes in small transactions (a recorder writing the same file waits for one at a time), then
gives the space back to the file system (a file created by an earlier version: run `telemetry
compact` once). Long-running commands can do this on their own: `--retain 30d` on `proxy`,
`serve` and `run`.

Examples:
  telemetry prune --older-than 30d
  telemetry prune --older-than 12h --yes";

/// Shown after the options of `telemetry compact --help`.
pub const COMPACT_EXAMPLES: &str = "\
Files created by this version give the space of deleted records back by themselves; a file
created before keeps it for reuse, so it never shrinks. `compact` converts it once: a full
rewrite (SQLite VACUUM) that prints how much free disk it needs (two copies of the data: the
temporary copy in $SQLITE_TMPDIR, $TMPDIR or /var/tmp, and the write-ahead log beside the file),
refuses before writing anything if there is not enough, and holds the write lock throughout:
stop recorders (proxy, run) first. Without --yes, asks for confirmation on a terminal and refuses
(exit 2) otherwise.

Examples:
  telemetry compact
  SQLITE_TMPDIR=/big/tmp telemetry compact --yes";

/// Shown after the options of `telemetry clear --help`.
pub const CLEAR_EXAMPLES: &str = "\
Without --yes, asks for confirmation on a terminal and refuses (exit 2) otherwise.

Examples:
  telemetry clear --yes";

/// Shown after the options of `telemetry import-openjarvis --help`.
pub const IMPORT_EXAMPLES: &str = "\
The peer stores 0.0 for unknown TTFT, energy and GPU values; they are imported as unknown.
Rows that fail validation are counted and listed, not imported.

Examples:
  telemetry import-openjarvis ~/.openjarvis/telemetry.db";

/// Shown after the options of `telemetry check --help`.
pub const CHECK_EXAMPLES: &str = "\
Examples:
  telemetry check
  telemetry --db /var/lib/telemetry.db check --format json
  telemetry check --repair        # rebuild the summaries from the rows if they disagree";

/// Examples shown by `telemetry run --help`.
pub const RUN_EXAMPLES: &str = "\
Examples:
  telemetry run --url http://127.0.0.1:8080/v1 --model smollm2-135m --calls 20 --stream
  telemetry run --url http://localhost:11434/v1 --model llama3.2 --prompts prompts.jsonl --concurrency 4
  OPENAI_API_KEY=sk-... telemetry run --url https://api.example.com/v1 --model gpt-4o-mini --calls 5";

/// Examples shown by `telemetry serve --help`.
pub const SERVE_EXAMPLES: &str = "\
GET /metrics is the Prometheus text format (0.0.4): call, token, cost and energy counters and
latency, time-to-first-token and time-per-output-token histograms by model, engine and agent,
computed read-only from the database at each scrape. GET / is a small index page. The metrics
are listed in the telemetry-prometheus crate docs and the README.

Examples:
  telemetry serve                              http://127.0.0.1:9464/metrics
  telemetry --db /srv/telemetry.db serve --listen 0.0.0.0:9464
  curl -s http://127.0.0.1:9464/metrics | promtool check metrics

prometheus.yml:
  scrape_configs:
    - job_name: inference
      static_configs: [{ targets: ['127.0.0.1:9464'] }]";

/// Examples shown by `telemetry proxy --help`.
#[cfg(feature = "proxy")]
pub const PROXY_EXAMPLES: &str = "\
Every request is forwarded unchanged (streams byte for byte, as they arrive). POST
/v1/chat/completions and /v1/completions are recorded: model, tokens (the server's usage, else
counted chunks), TTFT, inter-token latency, server timings, errors, cost, GPU energy. A request
header X-Telemetry-Agent: NAME sets the call's agent (and is not forwarded). The proxy answers
GET /telemetry/health (JSON) and GET /metrics (Prometheus, from the database) itself.

Examples:
  telemetry proxy --upstream http://127.0.0.1:8080
      then: OPENAI_BASE_URL=http://127.0.0.1:8000/v1 python app.py
  telemetry proxy --listen 0.0.0.0:8000 --upstream http://gpu1:8080 \\
      --route qwen3-32b=http://gpu2:8080 --engine-name llama.cpp --prices prices.toml
  telemetry proxy --upstream https://api.openai.com --prices prices.toml
      (the client's API key is forwarded, never stored)
  telemetry proxy --upstream https://vllm.internal --upstream-ca internal-ca.pem
  telemetry --db /srv/telemetry.db proxy --upstream http://127.0.0.1:8000 --gpu nvml";
