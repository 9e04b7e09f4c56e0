//! The recorded devices (`../shared/corpus` beside the project, or `$DEVTEL_CORPUS`), for the
//! tests and benches of every crate: one definition of where they are and how a recording and
//! its SNMP-context companions are read.

use std::path::PathBuf;

use crate::snmp::VarbindSet;
use crate::snmprec;

/// The corpus folder: `$DEVTEL_CORPUS`, else `shared/corpus` beside the project.
pub fn dir() -> PathBuf {
    std::env::var_os("DEVTEL_CORPUS")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
        })
}

/// The text of recording `name` (`snmprec/{name}.snmprec`).
///
/// # Panics
/// When the recording cannot be read: for tests and benches only.
pub fn recording(name: &str) -> String {
    let path = dir().join("snmprec").join(format!("{name}.snmprec"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names of the recorded devices, sorted (context companions `name@Context` left out).
///
/// # Panics
/// When the corpus folder cannot be read.
pub fn names() -> Vec<String> {
    let folder = dir().join("snmprec");
    let entries =
        std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
    let mut names: Vec<String> = entries
        .filter_map(|entry| {
            let file = entry.ok()?.file_name().into_string().ok()?;
            let name = file.strip_suffix(".snmprec")?;
            (!name.contains('@')).then(|| name.to_string())
        })
        .collect();
    names.sort();
    names
}

/// The varbinds of recording `name`, merged with its SNMP-context companions
/// (`name@Context.snmprec`): the HP device of `jetdirect_supplies_context` shows its supplies
/// only in context `Jetdirect`.
///
/// # Panics
/// As [`recording`].
pub fn varbinds(name: &str) -> VarbindSet {
    let mut text = recording(name);
    let folder = dir().join("snmprec");
    let prefix = format!("{name}@");
    if let Ok(entries) = std::fs::read_dir(&folder) {
        let mut companions: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| {
                let rest = f.strip_prefix(&prefix)?;
                rest.strip_suffix(".snmprec")
                    .map(|context| format!("{name}@{context}"))
            })
            .collect();
        companions.sort();
        for companion in companions {
            text.push('\n');
            text.push_str(&recording(&companion));
        }
    }
    snmprec::parse(&text).0
}

/// The expected extraction of a mature peer for recording `name` (`expected/{name}.json`),
/// as text, when there is one.
pub fn expected(name: &str) -> Option<String> {
    std::fs::read_to_string(dir().join("expected").join(format!("{name}.json"))).ok()
}
