//! `cargo xtask browser`: the demo's `telemetry report` rendered by a real Chromium.
//!
//! Records a demo into `target/browser/demo.db`, writes `target/browser/report.html`, then runs
//! headless Chromium twice on it: `--screenshot` (kept as `target/browser/report.png` for a person
//! to look at) and `--dump-dom`. It checks that both exit 0, that the rendered DOM holds the
//! charts' SVG, that the screenshot is not blank (its pixels vary), and that model names made
//! of controls and a right-to-left override (recorded with `telemetry run` against a loopback
//! answer) are shown as their escapes, never raw.
//!
//! Chromium is installed with apt when missing. With `CI=true` a failed install fails the step;
//! elsewhere one line says what was skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{build_telemetry, on_ci, status, target_dir, workspace_root};

/// Charts the report draws for the demo (which streams, so TTFT exists, and has energy and
/// cost): each must come back from the browser as an SVG.
const CHARTS: [&str; 10] = [
    "chart-latency",
    "chart-calls",
    "chart-latency-group",
    "chart-ttft",
    "chart-throughput",
    "chart-energy",
    "chart-cost",
    "chart-joules-per-token",
    "chart-cost-per-million",
    "chart-histogram",
];
/// Longest a Chromium run may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the check; `Ok` also when Chromium is missing outside CI (after saying so).
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("browser takes no arguments, got {a:?}"));
    }
    let ci = on_ci();
    let Some(chromium) = find_or_install(ci)? else {
        return Ok(());
    };
    let root = workspace_root()?;
    let target = target_dir(&root);
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;

    let telemetry = build_telemetry(&target)?;
    let db = dir.join("demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    status(
        Command::new(&telemetry)
            .arg("--db")
            .arg(&db)
            .args(["demo", "--stream", "--gpu", "mock"])
            .stdout(Stdio::null()),
        "telemetry demo",
    )?;
    record_hostile_names(&telemetry, &db)?;
    let html = dir.join("report.html");
    status(
        Command::new(&telemetry)
            .arg("--db")
            .arg(&db)
            .args(["report", "-o"])
            .arg(&html)
            .stdout(Stdio::null()),
        "telemetry report",
    )?;

    let png = dir.join("report.png");
    let _ = std::fs::remove_file(&png);
    let url = format!("file://{}", html.display());
    let shot = chromium_run(
        &chromium,
        &dir,
        &[format!("--screenshot={}", png.display()), url.clone()],
    )?;
    check_exit(&shot, "chromium --screenshot")?;
    let dom = chromium_run(&chromium, &dir, &["--dump-dom".to_owned(), url])?;
    check_exit(&dom, "chromium --dump-dom")?;
    let dom = String::from_utf8_lossy(&dom.stdout);
    check_dom(&dom)?;
    check_hostile_names(&dom)?;
    let spread = pixel_spread(&png)?;
    if spread < 100.0 {
        return Err(format!(
            "{} looks blank: luminance variance {spread:.1}",
            png.display()
        ));
    }
    eprintln!(
        "browser: {} rendered by {}: {} charts in the DOM, screenshot {} (luminance variance {spread:.0})",
        html.display(),
        chromium.display(),
        CHARTS.len(),
        png.display()
    );
    Ok(())
}

/// Chromium on `PATH`, installing it with apt when missing. `None` (after one line) when it
/// cannot be had outside CI.
fn find_or_install(ci: bool) -> Result<Option<PathBuf>, String> {
    if let Some(p) = find_chromium() {
        return Ok(Some(p));
    }
    let have_apt = Command::new("apt-get")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let installed = have_apt
        && Command::new("sh")
            .args([
                "-c",
                "apt-get update && apt-get install -y --no-install-recommends chromium",
            ])
            .status()
            .is_ok_and(|s| s.success());
    match (installed, find_chromium()) {
        (true, Some(p)) => Ok(Some(p)),
        _ if ci => Err("chromium is missing and `apt-get install chromium` failed".to_owned()),
        _ => {
            eprintln!(
                "browser: skipped the Chromium check of `telemetry report` (chromium not found and apt-get could not install it)"
            );
            Ok(None)
        }
    }
}

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// One headless Chromium run with a fresh profile (removed afterwards), killed after
/// [`BROWSER_TIMEOUT`].
fn chromium_run(chromium: &Path, dir: &Path, extra: &[String]) -> Result<Output, String> {
    let profile = dir.join(format!("profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", chromium.display()))?;
    // Read stdout on a thread so a large DOM never blocks the browser on a full pipe.
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut buf);
        }
        buf
    });
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > BROWSER_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(&profile);
                return Err(format!("chromium took over {BROWSER_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for chromium: {e}")),
        }
    }
    let mut out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for chromium: {e}"))?;
    out.stdout = reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    Ok(out)
}

fn check_exit(out: &Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(5).collect();
    Err(format!(
        "{what} exited with {}: {}",
        out.status,
        tail.join(" | ")
    ))
}

/// Model names that would lie on screen if shown raw (a right-to-left override that makes one
/// name read as another, a terminal escape, a C1 control), each with the text the report must
/// show for it: the escapes the terminal tables show.
const HOSTILE_NAMES: [(&str, &str); 3] = [
    ("gpt-\u{202e}inim-o4", "gpt-\\u{202e}inim-o4"),
    ("red\u{1b}[31mtext", "red\\x1b[31mtext"),
    ("next\u{85}line", "next\\u{85}line"),
];

/// Records one call for each of [`HOSTILE_NAMES`] with `telemetry run` against a one-shot
/// OpenAI-compatible answer served on a loopback port.
fn record_hostile_names(telemetry: &Path, db: &Path) -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("binding a loopback port: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("reading the loopback port: {e}"))?
        .port();
    let calls = HOSTILE_NAMES.len();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read, Write};
        for stream in listener.incoming().take(calls) {
            let Ok(stream) = stream else { continue };
            let Ok(mut writer) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let answer = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
            let _ = write!(
                writer,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    for (name, _) in HOSTILE_NAMES {
        status(
            Command::new(telemetry)
                .arg("--db")
                .arg(db)
                .args(["run", "--url", &format!("http://127.0.0.1:{port}/v1")])
                .args(["--model", name, "--calls", "1", "--engine", "hostile"])
                .stdout(Stdio::null()),
            "telemetry run (hostile model names)",
        )?;
    }
    server
        .join()
        .map_err(|_| "the loopback answer thread panicked".to_owned())
}

/// The report shows each hostile name as its escaped form and never the raw characters.
fn check_hostile_names(dom: &str) -> Result<(), String> {
    for (raw, shown) in HOSTILE_NAMES {
        if !dom.contains(&format!(">{shown}</th>")) {
            return Err(format!(
                "the rendered table does not show {raw:?} as {shown:?}"
            ));
        }
    }
    // The text shown (outside tags; a machine-read attribute such as `data-group` may keep
    // the exact name) holds none of the raw characters.
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            '\u{202e}' | '\u{1b}' | '\u{85}' if !in_tag => {
                return Err(format!("the rendered page shows a raw {c:?}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every chart's figure holds an `<svg>` in the DOM the browser built.
fn check_dom(dom: &str) -> Result<(), String> {
    for id in CHARTS {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .ok_or_else(|| format!("the rendered DOM has no #{id}"))?;
        let rest = &dom[at..];
        let end = rest.find("</figure>").unwrap_or(rest.len());
        if !rest[..end].contains("<svg") {
            return Err(format!("#{id} has no <svg> in the rendered DOM"));
        }
    }
    Ok(())
}

/// Variance of the screenshot's luminance (0..255 scale): near 0 for a blank page.
fn pixel_spread(png_path: &Path) -> Result<f64, String> {
    let file = std::fs::File::open(png_path)
        .map_err(|e| format!("opening {}: {e}", png_path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("decoding {}: {e}", png_path.display()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| format!("{} is too large", png_path.display()))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("decoding {}: {e}", png_path.display()))?;
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let (mut n, mut sum, mut sq) = (0.0, 0.0, 0.0);
    for px in pixels.chunks_exact(channels) {
        let l = if channels >= 3 {
            0.299 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.114 * f64::from(px[2])
        } else {
            f64::from(px[0])
        };
        n += 1.0;
        sum += l;
        sq += l * l;
    }
    if n == 0.0 {
        return Err(format!("{} has no pixels", png_path.display()));
    }
    let mean = sum / n;
    Ok(sq / n - mean * mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_must_show_escaped() {
        let shown: String = HOSTILE_NAMES
            .iter()
            .map(|(_, s)| format!("<th>{s}</th>"))
            .collect();
        assert!(check_hostile_names(&shown.replace("<th>", "<th scope=\"row\">")).is_ok());
        let raw = format!("{shown}<th>{}</th>", HOSTILE_NAMES[0].0);
        assert!(check_hostile_names(&raw).is_err());
        assert!(check_hostile_names("<th>gpt-4o</th>").is_err());
    }

    #[test]
    fn a_dom_without_a_chart_svg_is_refused() {
        let mut dom = String::new();
        for id in CHARTS {
            dom.push_str(&format!(
                "<figure id=\"{id}\"><div><svg></svg></div></figure>"
            ));
        }
        assert!(check_dom(&dom).is_ok());
        let broken = dom.replacen(
            "<figure id=\"chart-ttft\"><div><svg></svg>",
            "<figure id=\"chart-ttft\"><div>",
            1,
        );
        assert!(check_dom(&broken).unwrap_err().contains("chart-ttft"));
    }

    #[test]
    fn blank_and_busy_images_are_told_apart() {
        let dir = std::env::temp_dir().join(format!("xtask-png-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, f: &dyn Fn(u32) -> u8| {
            let path = dir.join(name);
            let file = std::fs::File::create(&path).unwrap();
            let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 16, 16);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            let data: Vec<u8> = (0..16 * 16 * 3).map(f).collect();
            w.write_image_data(&data).unwrap();
            path
        };
        let blank = write("blank.png", &|_| 255);
        let busy = write("busy.png", &|i| if (i / 3) % 2 == 0 { 0 } else { 255 });
        assert!(pixel_spread(&blank).unwrap() < 1.0);
        assert!(pixel_spread(&busy).unwrap() > 1_000.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
