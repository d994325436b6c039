//! The tasks. Each step is a cargo command; the first failure stops the task.

use std::process::Command;
use std::time::Instant;

use crate::manifests;
use crate::util::{cargo, target_dir, workspace_root};

/// One command of a task, with a label for the log.
struct Step {
    label: String,
    args: Vec<String>,
    /// Extra environment for the command.
    env: Vec<(&'static str, &'static str)>,
}

fn step(label: &str, args: &[&str]) -> Step {
    Step {
        label: label.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: Vec::new(),
    }
}

fn run(steps: &[Step]) -> Result<(), String> {
    let cargo = cargo();
    let total = Instant::now();
    for s in steps {
        let started = Instant::now();
        eprintln!("\n==> {} (cargo {})", s.label, s.args.join(" "));
        let status = Command::new(&cargo)
            .args(&s.args)
            .envs(s.env.iter().copied())
            .status()
            .map_err(|e| format!("could not start `{cargo}` for step `{}`: {e}", s.label))?;
        if !status.success() {
            return Err(format!(
                "step `{}` failed ({status}) after {:.0?}",
                s.label,
                started.elapsed()
            ));
        }
        eprintln!("<== {} ok in {:.1?}", s.label, started.elapsed());
    }
    eprintln!(
        "\nall {} steps passed in {:.1?}",
        steps.len(),
        total.elapsed()
    );
    Ok(())
}

/// `cargo xtask ci [--no-bench]`.
pub fn ci(args: &[String]) -> Result<(), String> {
    let root = workspace_root()?;
    let members = manifests::members(&root)?;
    let violations = manifests::layering_violations(&members);
    if !violations.is_empty() {
        return Err(format!(
            "the manifests break the layering:\n{}",
            violations.join("\n")
        ));
    }
    // Inside each crate, modules point one way too (no circle of files naming each other).
    for (name, _) in manifests::LAYERS {
        let found = crate::modules::problems(name, &root.join(name).join("src"))?;
        if !found.is_empty() {
            return Err(found.join("\n"));
        }
    }
    let mut steps = vec![
        step("format", &["fmt", "--all", "--", "--check"]),
        step(
            "clippy (all targets, all features)",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ];
    // Each library with no features, then with each feature alone: a user who needs one crate,
    // or one feature of it, must not compile the others, and must get code that builds.
    for args in manifests::each_feature_alone(&members) {
        // "telemetry-wrap --no-default-features --features gpu alone"
        let shown = args
            .iter()
            .position(|a| a == "--")
            .map_or(&args[2..], |end| &args[2..end]);
        steps.push(Step {
            label: format!("{} alone", shown.join(" ")),
            args,
            env: Vec::new(),
        });
    }
    let mut docs = step(
        "API docs without warnings (broken links, missing docs)",
        &["doc", "--workspace", "--no-deps", "--all-features"],
    );
    docs.env.push(("RUSTDOCFLAGS", "-D warnings"));
    steps.push(docs);
    steps.extend([
        // Default features are a subset of all features, so one test build covers both; the
        // default set still has to compile (a second test build would double CI's disk and time).
        step(
            "default features compile (all targets)",
            &["check", "--workspace", "--all-targets"],
        ),
        step(
            "tests and doctests, all features",
            &["test", "--workspace", "--all-features"],
        ),
        step(
            "a prune of 1 M records gives back at least 75 % of their space",
            &["run", "-q", "-p", "xtask", "--", "storage"],
        ),
        step(
            "report in Chromium",
            &["run", "-q", "-p", "xtask", "--", "browser"],
        ),
        step(
            "telemetry serve scraped by Prometheus",
            &["run", "-q", "-p", "xtask", "--", "prometheus"],
        ),
        step(
            "telemetry demo --otlp received by rotel",
            &["run", "-q", "-p", "xtask", "--", "otel"],
        ),
        step(
            "real llama.cpp server",
            &["run", "-q", "-p", "xtask", "--", "llama"],
        ),
        step(
            "OpenAI and Anthropic SDKs through telemetry proxy to llama.cpp",
            &["run", "-q", "-p", "xtask", "--", "proxy-llama"],
        ),
        step(
            "telemetry proxy over TLS (nginx, private CA) to llama.cpp",
            &["run", "-q", "-p", "xtask", "--", "proxy-tls"],
        ),
    ]);
    if !args.iter().any(|a| a == "--no-bench") {
        // Each benchmark run once (criterion's test mode: no `--bench` argument), built with the
        // test profile whose dependencies the test step compiled: it checks every bench still
        // works in seconds; measuring is `cargo xtask bench`'s job. (`cargo bench -- --quick`
        // compiled the whole workspace a second time, optimised, and measured: 458 s of CI.)
        // `--bench '*'` selects bench targets only (`--benches` would rerun the unit tests).
        steps.push(step(
            "benches, each run once (criterion test mode)",
            &["test", "--workspace", "--all-features", "--bench", "*"],
        ));
    }
    run(&steps)
}

/// Runs one cargo command with extra arguments appended; the error names the task.
fn cargo_with(task: &str, args: &[&str], extra: &[String]) -> Result<(), String> {
    let cargo = cargo();
    let status = Command::new(&cargo)
        .args(args)
        .args(extra)
        .status()
        .map_err(|e| format!("could not start `{cargo}` for {task}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{task} failed ({status})"))
    }
}

/// `cargo xtask bench [criterion args]`: the full benches, numbers for docs/benchmarks.md.
pub fn bench(args: &[String]) -> Result<(), String> {
    cargo_with(
        "benches",
        &[
            "bench",
            "--workspace",
            "--all-features",
            "--bench",
            "*",
            "--",
        ],
        args,
    )
}

/// The NVML measurement example, as cargo selects it (after `run` or `build`).
const GPU_CHECK: [&str; 7] = [
    "--release",
    "-p",
    "telemetry-gpu",
    "--features",
    "nvml",
    "--example",
    "gpu-check",
];

/// `cargo xtask gpu-check`: the NVML measurement example; prints JSON.
pub fn gpu_check(args: &[String]) -> Result<(), String> {
    let mut command = vec!["run"];
    command.extend(GPU_CHECK);
    command.push("--");
    cargo_with("gpu-check", &command, args)
}

/// `cargo xtask gpu-bundle`: release binaries of every GPU check plus `xtask/gpu/run.sh`, in
/// `target/gpu-bundle/`, for a GPU machine without a Rust toolchain (carry that folder there and
/// run `bash target/gpu-bundle/run.sh`).
pub fn gpu_bundle(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("gpu-bundle takes no arguments (got `{arg}`)"));
    }
    let root = workspace_root()?;
    let target = target_dir(&root);
    let bundle = target.join("gpu-bundle");
    std::fs::create_dir_all(&bundle).map_err(|e| format!("creating {}: {e}", bundle.display()))?;
    let mut gpu_check = vec!["build"];
    gpu_check.extend(GPU_CHECK);
    let builds: [(&str, &[&str]); 3] = [
        ("gpu-check", &gpu_check),
        (
            "gpu_wrap_check",
            &[
                "build",
                "--release",
                "-p",
                "telemetry-wrap",
                "--features",
                "nvml,sim",
                "--example",
                "gpu_wrap_check",
            ],
        ),
        ("telemetry", &["build", "--release", "-p", "telemetry-cli"]),
    ];
    for (name, args) in builds {
        cargo_with(name, args, &[])?;
        let from = if name == "telemetry" {
            target.join("release").join(name)
        } else {
            target.join("release/examples").join(name)
        };
        copy(&from, &bundle.join(name))?;
    }
    // The hardware test binary: its path (with a hash) is on cargo's stderr.
    let cargo = cargo();
    let output = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "test",
            "--release",
            "-p",
            "telemetry-gpu",
            "--features",
            "nvml",
            "--test",
            "nvml_hw",
            "--no-run",
        ])
        .output()
        .map_err(|e| format!("could not start `{cargo}` for nvml_hw: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("building nvml_hw failed:\n{stderr}"));
    }
    let test_binary = stderr
        .lines()
        .filter(|l| l.contains("nvml_hw"))
        .find_map(|l| {
            let start = l.rfind('(')? + 1;
            let end = l.rfind(')')?;
            l.get(start..end)
        })
        .ok_or_else(|| format!("no nvml_hw executable named in cargo's output:\n{stderr}"))?;
    copy(&root.join(test_binary), &bundle.join("nvml_hw"))?;
    copy(&root.join("xtask/gpu/run.sh"), &bundle.join("run.sh"))?;
    eprintln!(
        "GPU bundle in {}: carry it to the GPU machine and run `bash {}/run.sh`",
        bundle.display(),
        bundle.strip_prefix(&root).unwrap_or(&bundle).display()
    );
    Ok(())
}

fn copy(from: &std::path::Path, to: &std::path::Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

#[cfg(test)]
mod tidy {
    //! Repository rules that plain `cargo test` enforces.
    use std::fs;
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn readme_names_the_two_commands() {
        let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
        assert!(readme.contains("cargo run --release -p telemetry-cli -- demo"));
        assert!(readme.contains("cargo xtask ci"));
    }

    #[test]
    fn the_gpu_run_script_parses_and_runs_every_bundled_binary() {
        let script = root().join("xtask/gpu/run.sh");
        let status = std::process::Command::new("bash")
            .arg("-n")
            .arg(&script)
            .status()
            .expect("bash");
        assert!(status.success(), "bash -n {}", script.display());
        let text = fs::read_to_string(&script).expect("run.sh");
        for binary in ["gpu-check", "nvml_hw", "gpu_wrap_check", "telemetry"] {
            assert!(
                text.contains(&format!("\"$B/{binary}\"")),
                "run.sh does not run {binary}"
            );
        }
    }

    #[test]
    fn ci_script_runs_the_readme_check_command() {
        let ci = fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
        assert!(ci.contains("cargo xtask ci"));
    }

    #[test]
    fn every_crate_uses_workspace_lints_and_documents_features() {
        let members = crate::manifests::members(&root()).expect("manifests");
        for krate in members.iter().map(|m| m.name.as_str()) {
            let manifest =
                fs::read_to_string(root().join(krate).join("Cargo.toml")).expect("manifest");
            assert!(
                manifest.contains("[lints]\nworkspace = true"),
                "{krate} must use the workspace lints"
            );
            let lib = root().join(krate).join("src/lib.rs");
            if let Ok(text) = fs::read_to_string(&lib) {
                assert!(
                    text.starts_with("//!"),
                    "{krate}: lib.rs opens with a guide"
                );
                assert!(
                    text.contains("## Feature flags"),
                    "{krate}: lib.rs documents its feature flags"
                );
                assert!(text.contains("```"), "{krate}: lib.rs has an example");
            }
        }
    }
}
