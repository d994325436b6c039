//! nginx for the xtask checks: Debian's `nginx-light` installed when missing, and instances
//! started from the caller's `http {}` content (`upstream` and `server` blocks) in a folder of
//! their own (config, pid file, logs, temp files), stopped when dropped.
//!
//! `proxy-bench` runs two: a static upstream (`return` of fixed bodies) and a proxying front, the
//! reference the proxy's speed is compared with. Another check (a TLS front, say) is one more
//! `server` block given to [`Nginx::start`].

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{apt_install, log_tail, on_path};

/// How long an instance may take to listen on its ports.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping instance may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `nginx` is on `PATH`, installing Debian's `nginx-light` when missing. `Ok(false)` when
/// it cannot be had outside CI (the caller says what it skips); an error on CI.
pub fn available(ci: bool) -> Result<bool, String> {
    if on_path("nginx") || apt_install(&["nginx-light"]) && on_path("nginx") {
        return Ok(true);
    }
    if ci {
        return Err("nginx is missing and `apt-get install nginx-light` failed".to_owned());
    }
    Ok(false)
}

/// A running nginx: its master process (our child) and the workers it forked. Dropping it stops
/// them all.
#[derive(Debug)]
pub struct Nginx {
    master: Child,
}

impl Nginx {
    /// Starts nginx with `workers` worker processes and `http` as the content of its `http {}`
    /// block, everything under `dir` (created; `dir/nginx.conf`, `dir/stderr.log`, temp files
    /// under `dir/tmp`). Returns once every address in `listening` accepts connections.
    ///
    /// Access logging is off unless a `server` block turns it on (`access_log PATH;`).
    pub fn start(
        dir: &Path,
        workers: u32,
        http: &str,
        listening: &[SocketAddr],
    ) -> Result<Nginx, String> {
        fs::create_dir_all(dir.join("tmp"))
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let conf = dir.join("nginx.conf");
        fs::write(&conf, config(dir, workers, http))
            .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        let log = dir.join("stderr.log");
        let out = fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let master = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("could not start nginx: {e}"))?;
        let mut nginx = Nginx { master };
        let started = Instant::now();
        for addr in listening {
            loop {
                if let Ok(Some(status)) = nginx.master.try_wait() {
                    return Err(format!(
                        "nginx ({}) exited ({status}):\n{}",
                        conf.display(),
                        log_tail(&log)
                    ));
                }
                if TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if started.elapsed() > START_TIMEOUT {
                    return Err(format!(
                        "nginx ({}) did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                        conf.display(),
                        log_tail(&log)
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(nginx)
    }

    /// The worker processes' ids (the master's children).
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.master.id())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = self.worker_pids();
        // Fast shutdown (SIGTERM) of our own master; it stops its workers.
        let _ = Command::new("kill")
            .args(["-TERM", &self.master.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if let Ok(Some(_)) = self.master.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // A master that would not stop: kill it and the workers it had forked.
        for pid in workers {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

/// The whole configuration file.
fn config(dir: &Path, workers: u32, http: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes {workers};\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
         client_body_temp_path {d}/tmp/body;\n\
         proxy_temp_path {d}/tmp/proxy;\n\
         fastcgi_temp_path {d}/tmp/fastcgi;\n\
         uwsgi_temp_path {d}/tmp/uwsgi;\n\
         scgi_temp_path {d}/tmp/scgi;\n\
         access_log off;\n\
         {http}\n\
         }}\n"
    )
}

/// The processes whose parent is `pid`, from `/proc`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // "pid (comm) state ppid ...": the command may hold spaces and parentheses.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// The directives of a location that answers `status` with `text` as its body: one `return`,
/// or for a text longer than one configuration token may be (4 KB), `set` of pieces and a
/// `return` of them joined. The text may not hold `$` (nginx has no escape for it).
pub fn return_text(status: u16, text: &str) -> Result<String, String> {
    /// Raw bytes per piece: quoted, well under nginx's 4 096-byte token.
    const PIECE: usize = 1500;
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(PIECE);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(quoted(piece)?);
        rest = tail;
    }
    match pieces.as_slice() {
        [] => Ok(format!("return {status} '';")),
        [one] => Ok(format!("return {status} {one};")),
        _ => {
            let mut out = String::new();
            let mut joined = String::new();
            for (i, piece) in pieces.iter().enumerate() {
                out.push_str(&format!("set $body_piece_{i} {piece};\n"));
                joined.push_str(&format!("${{body_piece_{i}}}"));
            }
            out.push_str(&format!("return {status} \"{joined}\";"));
            Ok(out)
        }
    }
}

/// An nginx string literal (single-quoted) holding `text`: quotes, backslashes and newlines
/// escaped. A `$` is refused: nginx has no escape for it.
fn quoted(text: &str) -> Result<String, String> {
    if text.contains('$') {
        return Err(format!("nginx strings cannot hold a literal `$`: {text:?}"));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escapes_what_nginx_reads_specially() {
        assert_eq!(quoted("a'b\\c\n").unwrap(), "'a\\'b\\\\c\\n'");
        assert!(quoted("$x").is_err());
    }

    #[test]
    fn long_bodies_are_returned_in_pieces() {
        assert_eq!(return_text(200, "ok").unwrap(), "return 200 'ok';");
        let long = "é".repeat(1000);
        let text = return_text(200, &long).unwrap();
        assert!(text.starts_with("set $body_piece_0 '"), "{text}");
        assert!(
            text.ends_with("return 200 \"${body_piece_0}${body_piece_1}\";"),
            "{text}"
        );
    }

    #[test]
    fn the_config_keeps_everything_in_its_folder() {
        let text = config(Path::new("/x/n"), 1, "server { listen 1; }");
        assert!(text.contains("pid /x/n/nginx.pid;"));
        assert!(text.contains("proxy_temp_path /x/n/tmp/proxy;"));
        assert!(text.contains("server { listen 1; }\n}"));
        assert!(!text.contains("/var/"));
    }
}
