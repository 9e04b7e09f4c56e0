//! What the gateway's benches share.
#![allow(dead_code)] // each bench uses part of it

use std::path::{Path, PathBuf};

/// The recorded devices (`DEVTEL_CORPUS`, else `../shared/corpus` beside the project).
pub fn corpus() -> PathBuf {
    std::env::var_os("DEVTEL_CORPUS")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

/// A TCP port free on localhost now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
