//! The `telemetry` command (not built yet).

fn main() {
    eprintln!("telemetry: no commands are implemented yet");
    std::process::exit(2);
}
