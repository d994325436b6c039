//! The proxy's own HTTP/1.1 server for client connections: one task per connection, one read
//! buffer, heads parsed with `httparse`, responses written head and body together. It does what
//! a reverse proxy for HTTP APIs needs and no more: keep-alive (HTTP/1.1's default, HTTP/1.0
//! with `Connection: keep-alive`), pipelined requests served one after the other, `Expect:
//! 100-continue` answered when the body is first read, request bodies by `Content-Length` or
//! chunked, responses with a length or chunked (to HTTP/1.0 clients: until the close), `HEAD`,
//! `204` and `304` without a body, a slow-header timeout, a head size limit (`431`), and a
//! malformed head answered `400` and closed. There are no upgrades: `Upgrade` is hop-by-hop
//! and dropped, and after a `CONNECT` (refused by the service) the connection closes.
//!
//! - `codec`: the wire format, without I/O (request heads, body framing, response heads).
//! - `body`: [`RequestBody`], the request body the service reads.
//! - `conn`: [`serve`], one connection served to its end.

mod body;
mod codec;
mod conn;

pub(crate) use body::{BodyError, RequestBody};
/// Also the upstream client's, for the request bodies it sends chunked.
pub(crate) use conn::{Options, serve};
