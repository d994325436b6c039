//! What the workspace's manifests say: its members, their features and their dependencies on each
//! other; the layering rule that `docs/architecture.md` states, and the build of every feature of
//! every crate on its own.

use std::fs;
use std::path::Path;

use toml::{Table, Value};

/// The layers, lowest first. A crate may depend (normally, for builds or for tests) only on crates
/// of a strictly lower layer, so no crate depends on one above it or beside it. `xtask` is nobody's
/// dependency and is not listed.
pub const LAYERS: &[(&str, u8)] = &[
    ("telemetry-core", 0),
    ("telemetry-sqlite", 1),
    ("telemetry-gpu", 1),
    ("telemetry-otel", 1),
    ("telemetry-store", 2),
    ("telemetry-agg", 3),
    ("telemetry-wrap", 3),
    ("telemetry-prometheus", 4),
    ("telemetry-openai", 4),
    ("telemetry-proxy", 5),
    ("telemetry-cli", 6),
];

/// Dependencies that the layers allow but the design forbids outside tests: the query layer reads
/// the file on its own, and the decorator publishes on the bus instead of writing.
pub const NOT_AT_RUN_TIME: &[(&str, &str)] = &[
    ("telemetry-agg", "telemetry-store"),
    ("telemetry-wrap", "telemetry-store"),
];

/// One workspace member's manifest.
pub struct Member {
    /// The package name (the member's folder name in this workspace).
    pub name: String,
    /// The parsed `Cargo.toml`.
    pub manifest: Table,
}

fn parse(path: &Path) -> Result<Table, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.parse::<Table>()
        .map_err(|e| format!("parsing {}: {e}", path.display()))
}

/// The workspace's members, as `[workspace] members` lists them.
pub fn members(root: &Path) -> Result<Vec<Member>, String> {
    let workspace = parse(&root.join("Cargo.toml"))?;
    let list = workspace
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(Value::as_array)
        .ok_or("Cargo.toml has no [workspace] members list")?;
    list.iter()
        .map(|m| {
            let dir = m
                .as_str()
                .ok_or_else(|| format!("a workspace member is not a string: {m:?}"))?;
            let manifest = parse(&root.join(dir).join("Cargo.toml"))?;
            let name = manifest
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{dir}/Cargo.toml has no package name"))?
                .to_owned();
            Ok(Member { name, manifest })
        })
        .collect()
}

impl Member {
    /// The member's features other than `default`, in name order.
    pub fn features(&self) -> Vec<String> {
        self.manifest
            .get("features")
            .and_then(Value::as_table)
            .map(|t| t.keys().filter(|k| *k != "default").cloned().collect())
            .unwrap_or_default()
    }

    /// `(section, dependency)` for each dependency in `[dependencies]`, `[dev-dependencies]`,
    /// `[build-dependencies]` and their `[target.*]` forms.
    pub fn dependencies(&self) -> Vec<(&'static str, String)> {
        const SECTIONS: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];
        let mut tables = vec![&self.manifest];
        if let Some(targets) = self.manifest.get("target").and_then(Value::as_table) {
            tables.extend(targets.values().filter_map(Value::as_table));
        }
        let mut out = Vec::new();
        for table in tables {
            for section in SECTIONS {
                if let Some(deps) = table.get(section).and_then(Value::as_table) {
                    out.extend(deps.keys().map(|d| (section, d.clone())));
                }
            }
        }
        out
    }
}

/// The layer of a workspace crate, if it has one.
pub fn layer(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// Every way the members break the layering, one line each (empty when they keep it).
pub fn layering_violations(members: &[Member]) -> Vec<String> {
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let mut out = Vec::new();
    for member in members {
        if member.name == "xtask" {
            continue;
        }
        let Some(own) = layer(&member.name) else {
            out.push(format!(
                "{} has no layer: add it to LAYERS in xtask/src/manifests.rs and to \
                 docs/architecture.md",
                member.name
            ));
            continue;
        };
        for (section, dep) in member.dependencies() {
            if dep == "xtask" {
                out.push(format!("{} depends on xtask ([{section}])", member.name));
                continue;
            }
            if !names.contains(&dep.as_str()) {
                continue;
            }
            match layer(&dep) {
                Some(theirs) if theirs < own => {}
                _ => out.push(format!(
                    "{} (layer {own}) depends on {dep} (layer {}) in [{section}]: a crate may \
                     only depend on lower layers",
                    member.name,
                    layer(&dep).map_or_else(|| "none".to_owned(), |l| l.to_string())
                )),
            }
            if section != "dev-dependencies"
                && NOT_AT_RUN_TIME.contains(&(member.name.as_str(), dep.as_str()))
            {
                out.push(format!(
                    "{} depends on {dep} in [{section}]: only its tests may",
                    member.name
                ));
            }
        }
    }
    out
}

/// `cargo clippy` arguments that build each library crate with no features, then with each of
/// its features alone, warnings denied: a user who enables one feature must get a crate that
/// compiles, and code that only some feature sets see (the stand-ins a disabled feature leaves)
/// is linted too. (Clippy checks as `cargo check` does, so this costs about the same.)
pub fn each_feature_alone(members: &[Member]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let deny = ["--", "-D", "warnings"].map(str::to_owned);
    for member in members.iter().filter(|m| m.name != "xtask") {
        let base = ["clippy", "-p", &member.name, "--no-default-features"].map(str::to_owned);
        out.push([&base[..], &deny[..]].concat());
        for feature in member.features() {
            let mut args = base.to_vec();
            args.extend(["--features".to_owned(), feature]);
            args.extend(deny.iter().cloned());
            out.push(args);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn member(name: &str, manifest: &str) -> Member {
        Member {
            name: name.to_owned(),
            manifest: manifest.parse().expect("test manifest"),
        }
    }

    #[test]
    fn the_workspace_keeps_its_layers() {
        let members = members(&root()).expect("manifests");
        assert!(members.len() >= 9, "read {} members", members.len());
        let violations = layering_violations(&members);
        assert!(violations.is_empty(), "{}", violations.join("\n"));
    }

    #[test]
    fn an_upward_or_sideways_dependency_is_reported() {
        let members = [
            member("telemetry-core", "[dependencies]\ntelemetry-wrap = \"1\"\n"),
            member(
                "telemetry-store",
                "[dev-dependencies]\ntelemetry-agg = \"1\"\n",
            ),
            member("telemetry-wrap", "[dependencies]\ntelemetry-core = \"1\"\n"),
            member(
                "telemetry-gpu",
                "[target.'cfg(unix)'.dependencies]\ntelemetry-otel = \"1\"\n",
            ),
            member("telemetry-otel", ""),
            member("telemetry-agg", "[dependencies]\ntelemetry-store = \"1\"\n"),
            member("telemetry-new", ""),
        ];
        let violations = layering_violations(&members);
        let joined = violations.join("\n");
        assert!(
            joined.contains("telemetry-core (layer 0) depends on telemetry-wrap"),
            "{joined}"
        );
        assert!(
            joined.contains("telemetry-store (layer 2) depends on telemetry-agg (layer 3)"),
            "{joined}"
        );
        assert!(
            joined.contains("telemetry-gpu (layer 1) depends on telemetry-otel (layer 1)"),
            "{joined}"
        );
        assert!(
            joined.contains("telemetry-agg depends on telemetry-store in [dependencies]"),
            "{joined}"
        );
        assert!(joined.contains("telemetry-new has no layer"), "{joined}");
        assert_eq!(violations.len(), 5, "{joined}");
    }

    #[test]
    fn every_feature_is_built_alone() {
        let members = [
            member(
                "telemetry-wrap",
                "[features]\ndefault = [\"sim\"]\nsim = []\ngpu = []\n",
            ),
            member("xtask", "[features]\nx = []\n"),
        ];
        let steps: Vec<String> = each_feature_alone(&members)
            .iter()
            .map(|a| a.join(" "))
            .collect();
        assert_eq!(
            steps,
            [
                "clippy -p telemetry-wrap --no-default-features -- -D warnings",
                "clippy -p telemetry-wrap --no-default-features --features gpu -- -D warnings",
                "clippy -p telemetry-wrap --no-default-features --features sim -- -D warnings",
            ]
        );
    }
}
