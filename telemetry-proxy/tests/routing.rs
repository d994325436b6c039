//! Routing never guesses: the model is found wherever it is in the body (here after 9.4 MB of
//! base64 image), also in a gzip-compressed body; a body whose model cannot be known within the
//! limits gets a 4xx that says why, and its call is recorded with that reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use common::{client, eventually, post, proxy_with, records, send};
use telemetry_core::Outcome;
use telemetry_openai::fake::{FakeServer, Reply, chat_completion};
use telemetry_proxy::{Routes, Upstream};

/// A chat request whose `messages` (one base64 image of `image_bytes`) come before `model`.
fn image_request(model: &str, image_bytes: usize) -> String {
    format!(
        r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"what is this?"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{}"}}}}]}}],"model":"{model}","max_tokens":8}}"#,
        "iVBORw0KGgo".repeat(image_bytes / 11)
    )
}

async fn two_upstreams() -> (FakeServer, FakeServer, Routes) {
    let small = FakeServer::start(|_| Reply::json(200, chat_completion("small", 1, 1))).unwrap();
    let big = FakeServer::start(|_| Reply::json(200, chat_completion("big", 2, 2))).unwrap();
    let routes = Routes::new(Upstream::parse(&small.url()).unwrap())
        .route_spec(&format!("big={}", big.url()))
        .unwrap();
    (small, big, routes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_after_nine_megabytes_of_image_reaches_its_route() {
    let (small, big, routes) = two_upstreams().await;
    // The default limits.
    let (proxy, bus) = proxy_with(|c| c, routes).await;
    let body = image_request("big", 9_400_000);
    assert!(body.len() > 9_400_000 && body.find("\"model\"").unwrap() > 9_400_000);
    let got = send(
        &client(),
        post(&proxy.url("/v1/chat/completions"), body.clone()),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!((big.request_count(), small.request_count()), (1, 0));
    assert_eq!(big.requests()[0].body.len(), body.len(), "forwarded whole");
    eventually("the record", || records(&bus).len() == 1).await;
    assert_eq!(records(&bus)[0].model_id, "big");
    eventually("the budget to be given back", || {
        proxy.stats.get().buffered_bytes == 0
    })
    .await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_request_body_is_routed_by_its_model() {
    let (small, big, routes) = two_upstreams().await;
    let (proxy, _bus) = proxy_with(|c| c, routes).await;
    let plain = image_request("big", 100_000);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(plain.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut request = post(&proxy.url("/v1/chat/completions"), gz.clone());
    request
        .headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let got = send(&client(), request).await;
    assert_eq!(got.status, 200);
    assert_eq!((big.request_count(), small.request_count()), (1, 0));
    assert_eq!(big.requests()[0].body, gz, "forwarded as it came");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_routed_is_a_4xx_that_says_why_and_is_recorded() {
    let (small, big, routes) = two_upstreams().await;
    let (proxy, bus) = proxy_with(|c| c.capture_limit(1 << 20), routes).await;
    let cases: [(String, u16, &str); 5] = [
        (image_request("big", 2 << 20), 413, "not found in its first"),
        ("not json".into(), 400, "not a JSON object"),
        (
            r#"{"model":"small","messages":[],"model":"big"}"#.into(),
            400,
            "given twice",
        ),
        (r#"{"model":7}"#.into(), 400, "not a string"),
        (r#"{"model":"big","messages":["#.into(), 400, "ended inside"),
    ];
    for (body, status, why) in &cases {
        let got = send(
            &client(),
            post(&proxy.url("/v1/chat/completions"), body.clone()),
        )
        .await;
        assert_eq!(got.status, *status, "{why}");
        let error = &got.json()["error"];
        assert_eq!(error["type"], "unroutable_request");
        assert!(error["message"].as_str().unwrap().contains(why), "{error}");
    }
    assert_eq!((big.request_count(), small.request_count()), (0, 0));
    eventually("the records", || records(&bus).len() == cases.len()).await;
    for (r, (_, _, why)) in records(&bus).iter().zip(&cases) {
        assert_eq!(
            (r.outcome, r.error_kind.as_str()),
            (Outcome::Error, "unroutable_request")
        );
        assert!(r.error_message.contains(why), "{}", r.error_message);
        assert_eq!(r.metadata, serde_json::json!({}), "no upstream served it");
    }
    assert_eq!(proxy.stats.get().requests_refused, cases.len() as u64);

    // Without model routes nothing is refused: a large body is forwarded and recorded.
    let (proxy, bus) = proxy_with(
        |c| c.capture_limit(1 << 20),
        Routes::new(Upstream::parse(&small.url()).unwrap()),
    )
    .await;
    let got = send(
        &client(),
        post(
            &proxy.url("/v1/chat/completions"),
            image_request("big", 2 << 20),
        ),
    )
    .await;
    assert_eq!(got.status, 200);
    eventually("the record", || records(&bus).len() == 1).await;
    assert_eq!(records(&bus)[0].model_id, "small", "the response's model");
    proxy.shutdown().await;
}
