//! `telemetry proxy` in front of a fake upstream, for the tests of the proxy command.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::{Running, spawn, telemetry_std};

/// Where the proxies of the tests listen unless a test says otherwise.
const LOOPBACK: &str = "127.0.0.1:0";

/// A running `telemetry proxy`, killed when dropped.
pub struct RunningCli {
    /// The process.
    pub run: Running,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl RunningCli {
    /// Starts the proxy (stderr inherited) and waits until it listens.
    pub fn start(home: &Path, db: &Path, upstream: &str, extra: &[&str]) -> RunningCli {
        Self::launch(home, db, upstream, LOOPBACK, extra, Stdio::inherit())
    }

    /// As [`start`](Self::start), with stderr piped: read it with
    /// [`wait_with_stderr`](Self::wait_with_stderr) (a proxy writes only a few lines there).
    pub fn start_capturing_stderr(
        home: &Path,
        db: &Path,
        upstream: &str,
        extra: &[&str],
    ) -> RunningCli {
        Self::launch(home, db, upstream, LOOPBACK, extra, Stdio::piped())
    }

    /// As [`start_capturing_stderr`](Self::start_capturing_stderr), listening on `listen`
    /// (port 0); [`addr`](Self::addr) is then the loopback address of that port.
    pub fn start_listening_on(home: &Path, db: &Path, upstream: &str, listen: &str) -> RunningCli {
        let mut proxy = Self::launch(home, db, upstream, listen, &[], Stdio::piped());
        proxy.addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        proxy
    }

    fn launch(
        home: &Path,
        db: &Path,
        upstream: &str,
        listen: &str,
        extra: &[&str],
        stderr: Stdio,
    ) -> RunningCli {
        let run = spawn(
            telemetry_std(home)
                .stderr(stderr)
                .args(["--db", db.to_str().unwrap(), "proxy", "--listen", listen])
                .args(["--upstream", upstream, "--agent", "cli-test"])
                // No GPU unless the test asks for one.
                .args(if extra.contains(&"--gpu") {
                    &[][..]
                } else {
                    &["--gpu", "off"][..]
                })
                .args(["--engine-name", "fake-llama"])
                .args(extra),
        );
        // "proxy listening on http://127.0.0.1:PORT (OpenAI base URL ...), forwarding to ..."
        let addr = run.addr_between("proxy listening on http://", " ");
        RunningCli { run, addr }
    }

    pub fn connect(&self, method: &str, path: &str, body: &str) -> TcpStream {
        self.connect_with_headers(method, path, "", body)
    }

    /// As [`connect`](Self::connect), with `headers` (each line ending in `\r\n`) added.
    pub fn connect_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        stream
    }

    pub fn request(&self, method: &str, path: &str, body: &str) -> String {
        self.request_with_headers(method, path, "", body)
    }

    /// As [`request`](Self::request), with `headers` (each line ending in `\r\n`) added.
    pub fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> String {
        let mut bytes = Vec::new();
        self.connect_with_headers(method, path, headers, body)
            .read_to_end(&mut bytes)
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    pub fn terminate(&mut self) {
        self.run.sigterm();
    }

    pub fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let status = self
            .run
            .wait_exit(Duration::from_secs(20), "proxy ignored SIGTERM");
        (status, self.run.rest_of_stdout())
    }

    /// As [`wait`](Self::wait), also returning stderr (started with
    /// [`start_capturing_stderr`](Self::start_capturing_stderr)).
    pub fn wait_with_stderr(&mut self) -> (std::process::ExitStatus, String, String) {
        let (status, stdout) = self.wait();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.run.child.stderr.take() {
            pipe.read_to_string(&mut stderr).unwrap();
        }
        (status, stdout, stderr)
    }
}
