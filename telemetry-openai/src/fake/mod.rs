//! [`FakeServer`]: an OpenAI-compatible server on loopback that replays scripted answers —
//! transcripts of real servers, split at any byte, with pauses, stalls, aborts and any status
//! or header — and keeps the requests it received, so engines, proxies and users' own code can
//! be tested without a model. It runs on a thread and tokio runtime of its own, so blocking
//! and async tests use it alike; [`chat_completion`] and [`chat_stream`] give llama.cpp-style
//! bodies to answer with, [`chat_stream_as`] a stream as llama.cpp or the OpenAI API sends it
//! with and without `include_usage` ([`FakeRequest::asks_for_usage`] says which a request
//! wants).
//!
//! ```
//! use telemetry_openai::fake::{FakeServer, Reply, chat_completion};
//!
//! let server = FakeServer::start(|req| match req.path() {
//!     "/v1/models" => Reply::json(200, r#"{"data":[{"id":"m","owned_by":"llamacpp"}]}"#),
//!     _ => Reply::json(200, chat_completion("m", 7, 3)),
//! })
//! .unwrap();
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert!(server.base_url().ends_with("/v1"));
//! assert_eq!(server.request_count(), 0);
//! ```

mod bodies;
mod reply;
mod request;
mod server;

pub use bodies::{StreamFlavour, chat_completion, chat_stream, chat_stream_as};
pub use reply::{End, Part, Reply};
pub use request::FakeRequest;
pub use server::FakeServer;
