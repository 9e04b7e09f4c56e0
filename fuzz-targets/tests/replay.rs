//! Every fuzz target over its seeds (golden bytes, the shared recordings when present) and
//! over the inputs committed in `fuzz-targets/regressions/{target}/` (what a fuzzing run
//! found and was fixed, and the minimised corpus): a regression test on every CI run, on the
//! stable toolchain.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

#[test]
fn every_target_takes_its_seeds_and_regressions() {
    let corpus = root().join("../../shared/corpus");
    let corpus = corpus.exists().then_some(corpus.as_path());
    let mut total = 0;
    for (name, target) in devtel_fuzz_targets::TARGETS {
        let seeds = devtel_fuzz_targets::seeds(name, corpus);
        assert!(!seeds.is_empty(), "{name} has no seeds");
        for seed in &seeds {
            target(seed);
        }
        let mut replayed = seeds.len();
        if let Ok(dir) = std::fs::read_dir(root().join("regressions").join(name)) {
            for file in dir.flatten() {
                let bytes = std::fs::read(file.path()).unwrap();
                target(&bytes);
                replayed += 1;
            }
        }
        // Truncations and one-byte changes of every seed.
        for seed in seeds.iter().take(16) {
            for cut in (0..seed.len()).step_by(seed.len() / 32 + 1) {
                target(&seed[..cut]);
                let mut changed = seed.clone();
                changed[cut] ^= 0x5a;
                target(&changed);
                replayed += 2;
            }
        }
        total += replayed;
        eprintln!("{name}: {replayed} inputs");
    }
    assert!(total > 100);
}

/// The seeds are what they claim: the envelopes decode, the SNMP replies are replies.
#[test]
fn the_seeds_are_valid_inputs() {
    for seed in devtel_fuzz_targets::seeds("protocol_decode", None) {
        devtel_protocol::decode(&seed).unwrap();
    }
    let replies = devtel_fuzz_targets::seeds("snmp_reply", None);
    assert_eq!(replies.len(), 3, "the simulator answers every seed request");
    let configs = devtel_fuzz_targets::seeds("gateway_config", None);
    devtel_gateway::config::Config::from_toml(std::str::from_utf8(&configs[0]).unwrap()).unwrap();
}
