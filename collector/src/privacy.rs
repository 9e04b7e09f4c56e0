//! What the collector lets out about people: dock seats tell who sits where (a laptop's MAC
//! is personal data of its user), so by default no client MAC leaves the site box.
//!
//! - `privacy = "minimal"` (the default): a seat reports its occupancy and how many clients it
//!   learned, never their addresses.
//! - `privacy = "per-seat"` (opt-in, with the staff council's consent, see the README): a seat
//!   also reports a pseudonym of its first client, so "the same laptop as before" can be
//!   seen; the pseudonym is HMAC-SHA-256 of the MAC under a salt that never leaves the site
//!   box, cut to six bytes and marked locally administered, so it can be neither looked up in
//!   a vendor table nor mistaken for a real address. A new salt makes all pseudonyms new.
//!
//! Pure but for [`load_salt`].

use std::path::Path;

use devtel_protocol::Reading;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the pseudonym salt.
pub const SALT_LEN: usize = 32;

/// The file the salt is kept in, in the spool directory.
pub const SALT_FILE: &str = "pseudonym.salt";

/// What leaves the site box about dock clients.
#[derive(Clone, PartialEq, Eq)]
pub enum Privacy {
    /// Occupancy and client counts only.
    Minimal,
    /// Also a salted pseudonym of each seat's first client.
    PerSeat {
        /// The salt (secret of the site box).
        salt: [u8; SALT_LEN],
    },
}

impl std::fmt::Debug for Privacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Privacy::Minimal => f.write_str("Minimal"),
            Privacy::PerSeat { .. } => f.write_str("PerSeat { salt: *** }"),
        }
    }
}

/// The pseudonym of `mac` under `salt`.
pub fn pseudonym(salt: &[u8; SALT_LEN], mac: &[u8; 6]) -> [u8; 6] {
    let mut out = [0u8; 6];
    // HMAC takes a key of any length.
    if let Ok(mut h) = Hmac::<Sha256>::new_from_slice(salt) {
        h.update(mac);
        out.copy_from_slice(&h.finalize().into_bytes()[..6]);
    }
    // Locally administered, unicast: never a vendor's address.
    out[0] = (out[0] | devtel_protocol::dock::LOCALLY_ADMINISTERED) & !0x01;
    out
}

/// Applies `privacy` to a reading before it is spooled.
pub fn apply(reading: &mut Reading, privacy: &Privacy) {
    let Reading::Dock(dock) = reading else {
        return;
    };
    for seat in dock.seats.iter_mut() {
        seat.client_mac = match privacy {
            Privacy::Minimal => None,
            Privacy::PerSeat { salt } => seat.client_mac.map(|m| pseudonym(salt, &m)),
        };
    }
}

/// The site box's salt: read from `path`, or made (32 random bytes, mode 0600) at the first
/// start.
///
/// # Errors
/// When the file cannot be read or written, or holds something other than a salt.
pub fn load_salt(path: &Path) -> std::io::Result<[u8; SALT_LEN]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a {SALT_LEN}-byte salt", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut salt = [0u8; SALT_LEN];
            getrandom::fill(&mut salt).map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            use std::io::Write as _;
            let mut file = options.open(path)?;
            file.write_all(&salt)?;
            file.sync_all()?;
            Ok(salt)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_protocol::{DockReading, Occupancy, Seat};

    fn dock() -> Reading {
        let mut d = DockReading::default();
        for (i, mac) in [
            [0x00, 0x0e, 0x84, 0xf6, 0x00, 0xcb],
            [0xa4, 0xbb, 0x6d, 1, 2, 3],
        ]
        .into_iter()
        .enumerate()
        {
            d.seats
                .push(Seat {
                    if_index: i as u32 + 1,
                    name: None,
                    label: None,
                    link: None,
                    speed_mbps: None,
                    last_change_ticks: None,
                    clients: 1,
                    client_mac: Some(mac),
                    phone: None,
                    occupancy: Occupancy::Occupied,
                })
                .unwrap();
        }
        Reading::Dock(d)
    }

    fn macs(r: &Reading) -> Vec<Option<[u8; 6]>> {
        let Reading::Dock(d) = r else { unreachable!() };
        d.seats.iter().map(|s| s.client_mac).collect()
    }

    #[test]
    fn by_default_no_client_address_leaves_but_the_counts_do() {
        let mut r = dock();
        apply(&mut r, &Privacy::Minimal);
        assert_eq!(macs(&r), [None, None]);
        let Reading::Dock(d) = &r else { unreachable!() };
        assert!(d
            .seats
            .iter()
            .all(|s| s.clients == 1 && s.occupancy == Occupancy::Occupied));
    }

    #[test]
    fn per_seat_sends_stable_salted_pseudonyms_never_the_address() {
        let salt = [7u8; SALT_LEN];
        let mut r = dock();
        let before = macs(&r);
        apply(&mut r, &Privacy::PerSeat { salt });
        let after = macs(&r);
        for (b, a) in before.iter().zip(&after) {
            let (b, a) = (b.unwrap(), a.unwrap());
            assert_ne!(a, b);
            assert_eq!(a[0] & 0x03, 0x02, "locally administered unicast");
            assert_eq!(
                a,
                pseudonym(&salt, &b),
                "the same laptop, the same pseudonym"
            );
            assert_ne!(
                a,
                pseudonym(&[8u8; SALT_LEN], &b),
                "another salt, another pseudonym"
            );
        }
        assert_ne!(after[0], after[1]);
        assert_eq!(
            format!("{:?}", Privacy::PerSeat { salt }),
            "PerSeat { salt: *** }"
        );
    }

    #[test]
    fn the_salt_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("devtel-salt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(SALT_FILE);
        let first = load_salt(&path).unwrap();
        assert_eq!(load_salt(&path).unwrap(), first);
        assert_ne!(first, [0u8; SALT_LEN]);
        std::fs::write(&path, b"short").unwrap();
        assert!(load_salt(&path).is_err());
    }
}
