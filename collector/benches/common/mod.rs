//! What the benchmarks share: the recorded copiers they use and their env knobs.

/// Recorded copiers of `../shared/corpus` with full Printer-MIB and vendor data.
pub const PRINTERS: &[&str] = &[
    "ricoh_mpc3002",
    "sharp",
    "konica_c250i",
    "jetdirect_m130nw",
    "utax",
    "samsungprinter_m4080fx",
    "fujifilmprinter_c7580",
    "epson",
    "brother",
    "okilan_9450g",
];

/// An environment variable as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
