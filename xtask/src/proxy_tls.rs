//! `cargo xtask proxy-tls`: `telemetry proxy` to a real llama.cpp server behind a real TLS front.
//!
//! Starts llama.cpp's server as `cargo xtask llama` does ([`crate::llama`], same cache), makes a
//! CA and a certificate for `localhost` with the `openssl` CLI (in `target/proxy-tls/`, new each
//! run), and starts Debian's nginx ([`crate::nginx`], `nginx-light`) terminating TLS with it in
//! front of the server — gzip on, so answers come back compressed to a client that asks. Then
//! `telemetry proxy --upstream https://localhost:PORT --upstream-ca ca.pem` records three calls
//! made through it over plain HTTP: a blocking one, a stream with `include_usage`, and a blocking
//! one with `Accept-Encoding: gzip` (forwarded compressed, read decoded on the side). After
//! SIGTERM its records must equal the server's usage as the client saw it (the gzip call's, the
//! same prompt's), one record per call, none unparsed.
//!
//! Without nginx, openssl, Python or a server that runs here, one line says what was skipped —
//! unless `CI=true`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::llama::{self, MODEL_ALIAS, Unavailable};
use crate::nginx::{self, Nginx};
use crate::proxy_llama::ProxyChild;
use crate::util::{build_telemetry, free_port, on_ci, on_path, status, target_dir, workspace_root};

/// `cargo xtask proxy-tls`.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("proxy-tls takes no arguments (got `{arg}`)"));
    }
    let root = workspace_root()?;
    match check(&root) {
        Ok(summary) => {
            eprintln!("xtask proxy-tls: {summary}");
            Ok(())
        }
        Err(e) => e.skip_off_ci("proxy-tls", "telemetry proxy over TLS to llama.cpp"),
    }
}

fn check(root: &Path) -> Result<String, Unavailable> {
    let failed = Unavailable::Failed;
    if !on_path("openssl") {
        return Err(Unavailable::Missing(
            "no openssl CLI to make a certificate".into(),
        ));
    }
    if !nginx::available(on_ci()).map_err(failed)? {
        return Err(Unavailable::Missing(
            "no nginx (apt-get install nginx-light failed)".into(),
        ));
    }
    let target = target_dir(root);
    let work = target.join("proxy-tls");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| failed(format!("creating {}: {e}", work.display())))?;
    certificates(&work).map_err(failed)?;

    let cache = llama::cache_dir(root);
    let mut installed = llama::install(&cache)?;
    let telemetry = build_telemetry(&target).map_err(failed)?;
    let server = llama::start(&mut installed, &cache, &[])?;

    let port = free_port().map_err(|e| failed(format!("no free port: {e}")))?;
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    let http = format!(
        "server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {dir}/server.pem;
    ssl_certificate_key {dir}/server.key;
    gzip on;
    gzip_proxied any;
    gzip_min_length 1;
    gzip_types application/json text/event-stream;
    location / {{
        proxy_pass http://127.0.0.1:{llama};
        proxy_http_version 1.1;
        proxy_set_header Connection \"\";
        proxy_buffering off;
    }}
}}",
        dir = work.display(),
        llama = server.port,
    );
    let _nginx = Nginx::start(&work.join("nginx"), 1, &http, &[front]).map_err(failed)?;

    let db = work.join("proxy.db");
    let upstream = format!("https://localhost:{port}");
    let ca = work.join("ca.pem");
    let ca = ca.to_str().unwrap_or_default();
    let mut proxy = ProxyChild::start_with(
        &telemetry,
        &db,
        &["--upstream", &upstream, "--upstream-ca", ca],
    )?;

    let ask = |body: &str, gzip: bool| call(&proxy.addr, body, gzip).map_err(failed);
    let blocking = format!(
        r#"{{"model":"{MODEL_ALIAS}","messages":[{{"role":"user","content":"Say hello."}}],"max_tokens":8,"cache_prompt":false}}"#
    );
    let stream = format!(
        r#"{{"model":"{MODEL_ALIAS}","messages":[{{"role":"user","content":"Count to three."}}],"max_tokens":8,"stream":true,"stream_options":{{"include_usage":true}},"cache_prompt":false}}"#
    );
    let (plain_head, plain) = ask(&blocking, false)?;
    let plain_usage = usage_of_body(&plain_head, &plain)?;
    let (stream_head, streamed) = ask(&stream, false)?;
    let stream_usage = usage_of_stream(&stream_head, &streamed)?;
    let (gzip_head, gzipped) = ask(&blocking, true)?;
    if !gzip_head
        .to_ascii_lowercase()
        .contains("content-encoding: gzip")
    {
        return Err(failed(format!(
            "the gzip call was not answered compressed:\n{gzip_head}"
        )));
    }
    if gzipped.starts_with(b"{") {
        return Err(failed("the gzip answer is not compressed".into()));
    }
    let stopped = proxy.terminate()?;
    drop(server);

    let export = Command::new(&telemetry)
        .arg("--db")
        .arg(&db)
        .args(["export", "--format", "json"])
        .env("TELEMETRY_NO_PROGRESS", "1")
        .output()
        .map_err(|e| failed(format!("running telemetry export: {e}")))?;
    let records: Vec<Value> = serde_json::from_slice(&export.stdout)
        .map_err(|e| failed(format!("telemetry export gave no JSON array: {e}")))?;
    let tokens = |r: &Value| {
        (
            r["prompt_tokens"].as_u64().unwrap_or(u64::MAX),
            r["completion_tokens"].as_u64().unwrap_or(u64::MAX),
        )
    };
    let mut problems = Vec::new();
    if records.len() != 3 {
        problems.push(format!("{} records for 3 calls", records.len()));
    }
    for (i, r) in records.iter().enumerate() {
        if r["outcome"] != "ok" || r["tokens_counted"] != false || r["model_id"] != MODEL_ALIAS {
            problems.push(format!(
                "record {i} is not an ok call with the server's usage: {r}"
            ));
        }
    }
    if let [first, second, third] = records.as_slice() {
        if tokens(first) != plain_usage {
            problems.push(format!(
                "blocking: record {:?}, server {plain_usage:?}",
                tokens(first)
            ));
        }
        if tokens(second) != stream_usage || second["is_streaming"] != true {
            problems.push(format!(
                "stream: record {:?}, server {stream_usage:?}",
                tokens(second)
            ));
        }
        // The same prompt: the same prompt tokens; up to max_tokens of output.
        let (prompt, completion) = tokens(third);
        if prompt != plain_usage.0 || completion == 0 || completion > 8 {
            problems.push(format!(
                "gzip: record {:?}, plain call {plain_usage:?}",
                tokens(third)
            ));
        }
    }
    if !problems.is_empty() {
        return Err(failed(format!(
            "the proxy's records over TLS do not match the server's usage:\n{}\n(proxy said: {stopped})",
            problems.join("\n")
        )));
    }
    Ok(format!(
        "3 calls through nginx TLS recorded with the server's usage (blocking {plain_usage:?}, stream {stream_usage:?}, gzip {:?})",
        records.get(2).map(tokens).unwrap_or_default()
    ))
}

/// A CA and a certificate for `localhost` (and 127.0.0.1) signed by it, in `dir`.
fn certificates(dir: &Path) -> Result<(), String> {
    let openssl = |args: &[&str], what: &str| {
        status(Command::new("openssl").current_dir(dir).args(args), what)
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=xtask proxy-tls CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
        "openssl: making the CA",
    )?;
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
        "openssl: the server's key",
    )?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| format!("writing server.ext: {e}"))?;
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        "openssl: signing the server's certificate",
    )
}

/// POSTs `body` to the proxy's chat endpoint (HTTP/1.0: the answer ends when the connection
/// does); the response head and body.
fn call(addr: &str, body: &str, gzip: bool) -> Result<(String, Vec<u8>), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connecting to the proxy: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let encoding = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.0\r\nHost: proxy\r\nContent-Type: application/json\r\n{encoding}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("sending to the proxy: {e}"))?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .map_err(|e| format!("reading the proxy's answer: {e}"))?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {}", String::from_utf8_lossy(&reply)))?;
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "the call through the proxy failed:\n{head}\n{}",
            String::from_utf8_lossy(&reply[split + 4..])
        ));
    }
    Ok((head, reply[split + 4..].to_vec()))
}

/// `(prompt_tokens, completion_tokens)` of a usage object.
fn usage(v: &Value) -> Option<(u64, u64)> {
    Some((
        v["prompt_tokens"].as_u64()?,
        v["completion_tokens"].as_u64()?,
    ))
}

fn usage_of_body(head: &str, body: &[u8]) -> Result<(u64, u64), Unavailable> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| usage(&v["usage"]))
        .ok_or_else(|| {
            Unavailable::Failed(format!(
                "no usage in the blocking answer:\n{head}\n{}",
                String::from_utf8_lossy(body)
            ))
        })
}

fn usage_of_stream(head: &str, body: &[u8]) -> Result<(u64, u64), Unavailable> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| usage(&v["usage"]))
        .ok_or_else(|| {
            Unavailable::Failed(format!(
                "no usage chunk in the stream:\n{head}\n{}",
                String::from_utf8_lossy(body)
            ))
        })
}
