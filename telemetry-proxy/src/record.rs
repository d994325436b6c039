//! Recording side: the [`Recorder`] starts one [`Exchange`] per completion call, driving
//! telemetry-wrap's [`Call`] — the same lifecycle the instrumented engines use (clocks,
//! `InferenceStart`, GPU window, record built and published on the bus, GPU energy when a sampler
//! is attached). The exchange is shown the response as it passes ([`Watch`]) and ends the call
//! with what the response said. Nothing here can fail or delay a request: whatever cannot be read
//! only makes the record say less.
//!
//! Every record names the upstream that served it: its metadata holds `server.address` (the
//! upstream URL's host) and `server.port` (its port, 80 — 443 for `https://` — when the URL
//! names none), as
//! OpenTelemetry's conventions name a server. The contexts carrying them are built once per
//! upstream when the proxy starts; a call only picks its upstream's.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;
use telemetry_wrap::{Call, CallContext, Usage};

use telemetry_openai::protocol::{Api, OpenAiError};

use crate::request::RequestInfo;
use crate::secrets::Secrets;
use crate::stats::Counters;
use crate::telemetry::ProxyTelemetry;
use crate::upstream::{Routes, Upstream};
use crate::watch::{Seen, Watch};

/// Inter-token gaps a streamed call has room for from its start (2 KiB).
const STREAM_GAPS: u64 = 256;

/// Starts the record of each completion call.
#[derive(Debug, Clone)]
pub(crate) struct Recorder(Arc<RecorderInner>);

#[derive(Debug)]
struct RecorderInner {
    counters: Arc<Counters>,
    /// The context of calls to an upstream not in `upstreams` (none: every upstream the proxy
    /// forwards to comes from its routes).
    context: CallContext,
    /// Each upstream of the routes with its context, whose metadata names it.
    upstreams: Vec<(Arc<Upstream>, CallContext)>,
    telemetry: ProxyTelemetry,
    capture_limit: usize,
}

impl Recorder {
    pub fn new(
        counters: Arc<Counters>,
        telemetry: ProxyTelemetry,
        routes: &Routes,
        capture_limit: usize,
    ) -> Recorder {
        let context = telemetry.context();
        let upstreams = routes
            .all()
            .into_iter()
            .map(|(_, upstream)| (Arc::clone(upstream), server_context(&context, upstream)))
            .collect();
        Recorder(Arc::new(RecorderInner {
            counters,
            context,
            upstreams,
            telemetry,
            capture_limit,
        }))
    }

    /// The telemetry part of `/telemetry/health`, and whether it is healthy.
    pub fn health(&self) -> (Value, bool) {
        let Some(store) = &self.0.telemetry.store else {
            return (serde_json::json!({ "store": null }), true);
        };
        let stats = store.stats();
        let health = store.health();
        let healthy = health == telemetry_store::Health::Healthy;
        let store = serde_json::json!({
            "healthy": healthy,
            "health": health_json(&health),
            "written": stats.written,
            "pending": stats.pending,
            "dropped": stats.dropped,
            "rejected": stats.rejected,
            "bus_errors": stats.bus_errors,
            "failed_batches": stats.failed_batches,
            "last_error": stats.last_error,
            "pruned": stats.pruned,
            "reclaimed_bytes": stats.reclaimed_bytes,
            "longest_prune_step_ms": stats.longest_prune_step.as_secs_f64() * 1e3,
            // `--retain`: a failed pass is retried at the next and does not affect recording,
            // so it shows here without making the proxy unhealthy.
            "retention": stats.retention.as_ref().map(|r| serde_json::json!({
                "window_s": r.window.as_secs(),
                "passes": r.passes,
                "last_cutoff": r.last_cutoff,
                "last_error": r.last_error,
            })),
        });
        (serde_json::json!({ "store": store }), healthy)
    }

    /// A call described by `info` begins, forwarded to `upstream` (one of the routes'); `agent`
    /// is its `X-Telemetry-Agent` header. The description is taken: its model moves into the
    /// call rather than being copied.
    pub fn begin(
        &self,
        info: RequestInfo,
        agent: Option<&str>,
        upstream: &Arc<Upstream>,
    ) -> Exchange {
        self.begin_at(info, agent, Some(upstream))
    }

    /// A call the proxy could not route (or whose request never arrived whole): no upstream
    /// is named in its record.
    pub fn begin_unrouted(&self, info: RequestInfo, agent: Option<&str>) -> Exchange {
        self.begin_at(info, agent, None)
    }

    fn begin_at(
        &self,
        info: RequestInfo,
        agent: Option<&str>,
        upstream: Option<&Arc<Upstream>>,
    ) -> Exchange {
        if !info.parsed {
            Counters::bump(&self.0.counters.requests_unparsed);
        }
        let context = self
            .0
            .upstreams
            .iter()
            .find(|(u, _)| upstream.is_some_and(|up| Arc::ptr_eq(u, up)))
            .map_or(&self.0.context, |(_, c)| c);
        let (api, operation) = info.endpoint.names();
        let mut builder = context
            .call(info.model.unwrap_or_default())
            .streaming(info.stream)
            .api(api, operation);
        if let Some(agent) = agent {
            builder = builder.agent(agent);
        }
        if info.stream {
            // Room for the gaps between this many chunks: a usual answer's stream records its
            // inter-token gaps without growing the list (from empty: 4, 8, 16, … reallocations).
            builder = builder.expected_tokens(STREAM_GAPS);
        }
        Exchange {
            recorder: self.clone(),
            call: Some(Box::new(builder.start())),
            api: info.endpoint.0,
            watch: None,
            secrets: None,
        }
    }
}

/// `context` with metadata naming `upstream` (`server.address`, `server.port`). A metadata the
/// record could not carry (a host name beyond the record's limits) leaves `context` as it is.
fn server_context(context: &CallContext, upstream: &Upstream) -> CallContext {
    let (host, port) = upstream.host_port();
    context
        .clone()
        .with_metadata(serde_json::json!({ "server.address": host, "server.port": port }))
        .unwrap_or_else(|_| context.clone())
}

/// How a call ended.
enum End {
    /// The response body ended normally.
    Complete,
    /// The upstream could not be reached (or gave no response head).
    Unreachable { kind: &'static str, message: String },
    /// The upstream's body broke off.
    BodyFailed(String),
    /// The client went away first.
    ClientGone,
}

/// One completion call between the proxy and its upstream.
#[derive(Debug)]
pub(crate) struct Exchange {
    recorder: Recorder,
    /// The call, until it ends (boxed: the response body that holds the exchange stays small).
    call: Option<Box<Call>>,
    /// The API the call speaks.
    api: Api,
    watch: Option<Watch>,
    /// The request's API keys, kept out of the record's error message.
    secrets: Option<Box<Secrets>>,
}

impl Exchange {
    /// The API the call speaks.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The request carried these API keys: an error message that quotes one has it redacted.
    pub fn keep_out(&mut self, secrets: Option<Secrets>) {
        self.secrets = secrets.map(Box::new);
    }

    /// `message`, without the request's API keys.
    fn scrubbed(&self, message: String) -> String {
        match &self.secrets {
            Some(s) => s.scrub(message),
            None => message,
        }
    }

    /// The upstream answered with `status` and a body of `content_type`.
    pub fn response(&mut self, status: StatusCode, content_type: Option<&[u8]>) {
        if let Some(call) = &mut self.call {
            self.watch = Some(Watch::new(
                self.api,
                status,
                content_type,
                self.recorder.0.capture_limit,
                call,
            ));
        }
    }

    /// Part of the response body went by.
    #[inline]
    pub fn data(&mut self, data: &Bytes) {
        if let (Some(w), Some(call)) = (&mut self.watch, &mut self.call) {
            w.data(data, call);
        }
    }

    /// The response body ended normally.
    pub fn complete(mut self) {
        self.end(End::Complete);
    }

    /// The call failed without a response to read: the upstream could not be reached or did
    /// not answer in time, or the proxy could not route the request; `kind` is the record's
    /// error kind.
    pub fn fail(mut self, kind: &'static str, message: String) {
        self.end(End::Unreachable { kind, message });
    }

    /// The response cannot be read (a body that does not decode, the buffer budget spent): it
    /// is still forwarded, and recorded without what it would have said.
    pub fn unreadable(&mut self, why: &str) {
        if let Some(w) = &mut self.watch {
            tracing::debug!(why, "not reading this response");
            w.give_up();
        }
    }

    /// The upstream's body broke off.
    pub fn upstream_body_failed(mut self, error: &(dyn std::error::Error + 'static)) {
        self.end(End::BodyFailed(crate::reply::chain(error)));
    }

    /// The client went away before the response ended.
    pub fn client_gone(mut self) {
        self.end(End::ClientGone);
    }

    fn end(&mut self, end: End) {
        // The call stays in its box (some 300 bytes, not moved out) until it is delivered.
        let Some(mut call) = self.call.take() else {
            return;
        };
        let seen = match (self.watch.take(), &end) {
            (Some(w), End::Complete) => w.end(),
            (Some(w), _) => w.cut(),
            (None, _) => Seen::default(),
        };
        let (terminal, error) = (seen.terminal, apply(&mut call, seen));
        // A stream whose terminal event came is over: what the client or the upstream's
        // connection does after it changes nothing.
        let end = if terminal { End::Complete } else { end };
        let counters = &self.recorder.0.counters;
        Counters::bump(&counters.calls_recorded);
        match end {
            End::ClientGone => {
                Counters::bump(&counters.calls_cancelled);
                call.cancel_boxed();
            }
            End::Unreachable { kind, message } => {
                Counters::bump(&counters.calls_failed);
                call.fail_boxed(kind, self.scrubbed(message));
            }
            End::BodyFailed(message) => {
                Counters::bump(&counters.calls_failed);
                call.fail_boxed("io", self.scrubbed(message));
            }
            End::Complete => match error {
                Some(e) => {
                    Counters::bump(&counters.calls_failed);
                    call.fail_boxed(e.error_kind(), self.scrubbed(e.to_string()));
                }
                None => call.finish_boxed(),
            },
        }
    }
}

/// What the response said, into the call: its model (moved, not copied), the server's usage (or
/// no tokens, counted, for a body that is not the protocol) and the server's own times; returns
/// the error the response reported.
fn apply(call: &mut Call, seen: Seen) -> Option<OpenAiError> {
    if let Some(model) = seen.model {
        call.set_model(model);
    }
    match seen.usage {
        Some(usage) => call.set_usage(usage),
        // A stream counts its content chunks (the call knows them); a whole body we could not
        // read has no tokens we know of.
        None if seen.unparsed && !seen.streaming => call.set_counted_usage(Usage::default()),
        None => {}
    }
    if let Some(p) = seen.phases {
        call.set_server_timings(p.prefill(), p.decode());
    }
    seen.error
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // Dropped unended: the client went away before the upstream answered (the upstream
        // request was dropped with it).
        self.end(End::ClientGone);
    }
}

/// The store's health as JSON: `{"state": "healthy" | "failing" | "stopped" | "closed", ...}`
/// with `consecutive_failures` and `last_error` when failing, `reason` when stopped.
fn health_json(health: &telemetry_store::Health) -> Value {
    use telemetry_store::Health;
    let mut v = serde_json::json!({ "state": health.state() });
    match health {
        Health::Failing {
            consecutive_failures,
            last_error,
        } => {
            v["consecutive_failures"] = (*consecutive_failures).into();
            v["last_error"] = last_error.as_str().into();
        }
        Health::Stopped { reason } => v["reason"] = reason.as_str().into(),
        _ => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::ByteBudget;
    use crate::request::Endpoint;
    use telemetry_core::{EventBus, Outcome, TelemetryRecord};
    use telemetry_wrap::{Price, PriceTable};

    fn recorder(bus: &Arc<EventBus>) -> Recorder {
        let prices = PriceTable::new().with(
            "m",
            Price::PerToken {
                input: 1.0,
                cached_input: 1.0,
                output: 2.0,
            },
        );
        let telemetry = ProxyTelemetry::new(Arc::clone(bus))
            .engine_name("llama.cpp")
            .agent("default-agent")
            .price_table(prices);
        let counters = Counters::new(ByteBudget::new(crate::DEFAULT_BUFFER_BUDGET));
        Recorder::new(Arc::new(counters), telemetry, &routes(), 1 << 20)
    }

    fn routes() -> Routes {
        Routes::new(Upstream::parse("http://gpu-host:8080").unwrap())
            .route_spec("big=http://[::1]")
            .unwrap()
    }

    fn info(model: Option<&str>) -> RequestInfo {
        RequestInfo {
            endpoint: Endpoint(Api::ChatCompletions),
            model: model.map(str::to_owned),
            stream: false,
            parsed: true,
            usage: Default::default(),
        }
    }

    /// `begin` for a call to the default upstream.
    fn begin(r: &Recorder, info: RequestInfo, agent: Option<&str>) -> Exchange {
        let upstream = Arc::clone(&r.0.upstreams[0].0);
        r.begin(info, agent, &upstream)
    }

    fn last_record(bus: &EventBus) -> TelemetryRecord {
        bus.history()
            .iter()
            .rev()
            .find_map(|e| e.as_record().map(|r| TelemetryRecord::clone(r)))
            .unwrap()
    }

    #[test]
    fn a_blocking_call_becomes_a_valid_record_with_cost() {
        let bus = Arc::new(EventBus::with_history(16));
        let r = recorder(&bus);
        let mut ex = begin(&r, info(Some("req-model")), None);
        ex.response(StatusCode::OK, None);
        ex.data(&Bytes::from_static(
            br#"{"model":"m","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#,
        ));
        ex.complete();
        let rec = last_record(&bus);
        assert_eq!(rec.validate(), Ok(()));
        assert_eq!(
            (rec.model_id.as_str(), rec.engine.as_str()),
            ("m", "llama.cpp")
        );
        assert_eq!(rec.agent, "default-agent");
        assert_eq!((rec.prompt_tokens, rec.completion_tokens), (10, 5));
        assert!(!rec.tokens_counted && !rec.cost_unknown);
        assert_eq!(rec.cost_usd, 20.0);
        assert_eq!(rec.outcome, Outcome::Ok);
        assert_eq!(
            (rec.api.as_str(), rec.operation.as_str()),
            ("openai_chat", "chat")
        );
    }

    #[test]
    fn the_header_agent_wins_and_unknown_bodies_have_no_tokens() {
        let bus = Arc::new(EventBus::with_history(16));
        let r = recorder(&bus);
        let mut ex = begin(&r, info(Some("req-model")), Some("notebook"));
        ex.response(StatusCode::OK, None);
        ex.data(&Bytes::from_static(b"<html>not json</html>"));
        ex.complete();
        let rec = last_record(&bus);
        assert_eq!(rec.validate(), Ok(()));
        assert_eq!(rec.agent, "notebook");
        assert_eq!(rec.model_id, "req-model");
        assert!(rec.tokens_counted && rec.cost_unknown);
        assert_eq!(rec.total_tokens, 0);
    }

    #[test]
    fn endings_map_to_outcomes() {
        let bus = Arc::new(EventBus::with_history(16));
        let r = recorder(&bus);
        begin(&r, info(None), None).fail("connect", "refused".into());
        let rec = last_record(&bus);
        assert_eq!(
            (rec.outcome, rec.error_kind.as_str(), rec.model_id.as_str()),
            (Outcome::Error, "connect", "unknown")
        );
        drop(begin(&r, info(Some("m")), None));
        assert_eq!(last_record(&bus).outcome, Outcome::Cancelled);
        let mut ex = begin(&r, info(Some("m")), None);
        ex.response(StatusCode::TOO_MANY_REQUESTS, None);
        ex.data(&Bytes::from_static(br#"{"error":{"message":"slow down"}}"#));
        ex.complete();
        let rec = last_record(&bus);
        assert_eq!(rec.error_kind, "http_429");
        assert!(
            rec.error_message.contains("slow down"),
            "{}",
            rec.error_message
        );
        assert_eq!(rec.validate(), Ok(()));
        let counters = r.0.counters.snapshot();
        assert_eq!(
            (
                counters.calls_recorded,
                counters.calls_failed,
                counters.calls_cancelled
            ),
            (3, 2, 1)
        );
    }

    #[test]
    fn records_name_the_upstream_that_served_them() {
        let bus = Arc::new(EventBus::with_history(16));
        let r = recorder(&bus);
        let routes = routes();
        let served_by = |upstream: &Arc<Upstream>| {
            r.begin(info(Some("m")), None, upstream).complete();
            last_record(&bus).metadata
        };
        // The recorder's own upstreams (the proxy passes those it picked from the same routes).
        let default = Arc::clone(&r.0.upstreams[0].0);
        let big = Arc::clone(&r.0.upstreams[1].0);
        assert_eq!(default.url(), "http://gpu-host:8080");
        assert_eq!(
            served_by(&default),
            serde_json::json!({"server.address": "gpu-host", "server.port": 8080})
        );
        assert_eq!(
            served_by(&big),
            serde_json::json!({"server.address": "::1", "server.port": 80})
        );
        // An upstream the recorder was not built with: no server named.
        assert_eq!(served_by(routes.default_upstream()), serde_json::json!({}));
    }

    #[test]
    fn the_stores_health_is_a_json_value_with_its_state_and_details() {
        use telemetry_store::Health;
        assert_eq!(
            health_json(&Health::Healthy),
            serde_json::json!({"state": "healthy"})
        );
        assert_eq!(
            health_json(&Health::Failing {
                consecutive_failures: 4,
                last_error: "database or disk is full".into()
            }),
            serde_json::json!({"state": "failing", "consecutive_failures": 4,
                               "last_error": "database or disk is full"})
        );
        assert_eq!(
            health_json(&Health::Stopped {
                reason: "/d/t.db was deleted".into()
            }),
            serde_json::json!({"state": "stopped", "reason": "/d/t.db was deleted"})
        );
        assert_eq!(
            health_json(&Health::Closed),
            serde_json::json!({"state": "closed"})
        );
    }
}
