//! The tasks. Each step is a cargo command; the first failure stops the task.

use std::process::Command;
use std::time::Instant;

/// One command of a task, with a label for the log.
struct Step {
    label: &'static str,
    args: Vec<&'static str>,
}

fn step(label: &'static str, args: &[&'static str]) -> Step {
    Step {
        label,
        args: args.to_vec(),
    }
}

fn run(steps: &[Step]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let total = Instant::now();
    for s in steps {
        let started = Instant::now();
        eprintln!("\n==> {} (cargo {})", s.label, s.args.join(" "));
        let status = Command::new(&cargo)
            .args(&s.args)
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
        // Each library on its own with no default features: a user who needs one crate
        // must not compile the others.
        step(
            "core without features",
            &["check", "-p", "telemetry-core", "--no-default-features"],
        ),
        step("store alone", &["check", "-p", "telemetry-store"]),
        step(
            "agg without features",
            &["check", "-p", "telemetry-agg", "--no-default-features"],
        ),
        step(
            "gpu without features",
            &["check", "-p", "telemetry-gpu", "--no-default-features"],
        ),
        step(
            "wrap without features",
            &["check", "-p", "telemetry-wrap", "--no-default-features"],
        ),
        step(
            "tests and doctests, default features",
            &["test", "--workspace"],
        ),
        step(
            "tests and doctests, all features",
            &["test", "--workspace", "--all-features"],
        ),
    ];
    if !args.iter().any(|a| a == "--no-bench") {
        steps.push(Step {
            label: "benches, quick pass",
            // `--bench '*'` selects bench targets only: libtest harnesses reject `--quick`.
            args: vec![
                "bench",
                "--workspace",
                "--all-features",
                "--bench",
                "*",
                "--",
                "--quick",
            ],
        });
    }
    run(&steps)
}

/// Runs one cargo command with extra arguments appended; the error names the task.
fn cargo_with(task: &str, args: &[&str], extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
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

/// `cargo xtask gpu-check`: the NVML measurement example; prints JSON.
pub fn gpu_check(args: &[String]) -> Result<(), String> {
    cargo_with(
        "gpu-check",
        &[
            "run",
            "--release",
            "-p",
            "telemetry-gpu",
            "--features",
            "nvml",
            "--example",
            "gpu-check",
            "--",
        ],
        args,
    )
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
    fn ci_script_runs_the_readme_check_command() {
        let ci = fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
        assert!(ci.contains("cargo xtask ci"));
    }

    #[test]
    fn every_crate_uses_workspace_lints_and_documents_features() {
        for krate in [
            "telemetry-core",
            "telemetry-store",
            "telemetry-agg",
            "telemetry-gpu",
            "telemetry-wrap",
            "telemetry-cli",
            "xtask",
        ] {
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
