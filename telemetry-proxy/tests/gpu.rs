//! With a GPU sampler attached, each record carries the call's GPU energy, and overlapping
//! calls share the device's energy instead of each counting all of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client, eventually, post, recording_proxy, records, send};
use telemetry_gpu::{GpuSampler, MockBackend, PowerProfile, SamplerConfig, SystemClock};
use telemetry_openai::fake::{FakeServer, Reply, chat_stream};

const STREAM: &str = r#"{"model":"m","messages":[],"stream":true}"#;
const WATTS: f64 = 400.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_streams_share_the_gpu_energy() {
    let sampler = Arc::new(
        GpuSampler::with_config(
            MockBackend::single(PowerProfile::Constant(WATTS)),
            Arc::new(SystemClock::new()),
            SamplerConfig::default(),
        )
        .unwrap(),
    );
    // ~300 ms streams.
    let events = chat_stream("m", 10, Some((4, 10)), Duration::from_millis(25));
    let upstream = FakeServer::start(move |_| Reply::events(events.clone())).unwrap();
    let attached = Arc::clone(&sampler);
    let (proxy, bus) = recording_proxy(&upstream.url(), move |t| t.gpu_sampler(attached)).await;
    let url = proxy.url("/v1/chat/completions");
    let c = client();
    let (a, b) = tokio::join!(send(&c, post(&url, STREAM)), send(&c, post(&url, STREAM)));
    assert!(a.status == 200 && b.status == 200);
    // Records wait for the sampler to cover their window; flushing completes them now.
    sampler.flush();
    eventually("both records", || records(&bus).len() == 2).await;
    let all = records(&bus);
    for r in &all {
        assert_eq!(r.validate(), Ok(()));
        let joules = r.energy_joules.expect("energy measured");
        // Each call gets about half of 400 W over its own ~0.3 s (its share of the overlap).
        let alone = WATTS * r.latency_seconds;
        assert!(
            joules > 0.2 * alone && joules < 0.8 * alone,
            "{joules} J for a {:.3} s call (alone it would be {alone} J)",
            r.latency_seconds
        );
        assert!(r.prefill_energy_joules.is_some() && r.decode_energy_joules.is_some());
    }
    proxy.shutdown().await;
}
