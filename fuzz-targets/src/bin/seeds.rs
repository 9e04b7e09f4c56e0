//! Writes every target's seeds into `{dir}/{target}/seed-{n}` (for `scripts/fuzz.sh`).

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: devtel-fuzz-seeds DIR");
        return std::process::ExitCode::FAILURE;
    };
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    let corpus = corpus.exists().then_some(corpus.as_path());
    for (name, _) in devtel_fuzz_targets::TARGETS {
        let target_dir = dir.join(name);
        if let Err(e) = std::fs::create_dir_all(&target_dir) {
            eprintln!("{}: {e}", target_dir.display());
            return std::process::ExitCode::FAILURE;
        }
        for (i, seed) in devtel_fuzz_targets::seeds(name, corpus).iter().enumerate() {
            if let Err(e) = std::fs::write(target_dir.join(format!("seed-{i}")), seed) {
                eprintln!("{}: {e}", target_dir.display());
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
