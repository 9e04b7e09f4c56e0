//! The SNMP client, and the owned values it fills (defined in `devtel-devices`, re-exported
//! here for the collector's own code).

pub mod ber;
pub mod client;
pub mod transport;

pub use devtel_devices::snmp::*;
