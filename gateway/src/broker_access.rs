//! Broker access for a Mosquitto in front of devtel: one user per site, each allowed its own
//! topics only, and the gateway's user. `devtel-gateway broker-access` writes the files;
//! the text is made here (pure), the files in [`write`].
//!
//! What a site's user may do (the user name is the site id, Mosquitto's `%u`):
//! - publish telemetry under its own site: `devtel/v1/telemetry/{site}/#`;
//! - publish and read its collector status: `devtel/v1/collectors/{site}`;
//! - read its acknowledgements: `devtel/v1/acks/{site}/#`.
//!
//! An integrator's user (`--integrator NAME`) may read the unit and device documents and
//! nothing else (the documents on the broker never list single seats). Mosquitto applies the
//! site patterns to every user, so an integrator could also publish as a site of its own
//! name: names of sites are refused for integrators, and the gateway refuses a site not in
//! `[[sites]]` (`unknown_site`).
//!
//! The gateway may stop nothing of that by mistake: even with a broker that lets everyone
//! publish everywhere, it refuses a site speaking for another (`crate::sites`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The gateway's broker user, unless `--gateway-user` says otherwise.
pub const DEFAULT_GATEWAY_USER: &str = "devtel-gateway";

/// PBKDF2 iterations of the password hashes (Mosquitto's own default; the passwords are
/// random, 192 bits, so the count adds nothing against guessing).
const ITERATIONS: u32 = 101;

/// A failure writing the access files.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No `[[sites]]` in the configuration.
    #[error("the configuration lists no [[sites]]: there is no site user to make")]
    NoSites,
    /// A site is named like the gateway's user.
    #[error("site {0:?} has the gateway user's name")]
    SiteIsGateway(String),
    /// An integrator is named like a site or the gateway's user.
    #[error("integrator {0:?} has the name of a site or of the gateway's user")]
    IntegratorTaken(String),
    /// An integrator's name is not a plain user name.
    #[error("integrator {0:?}: use 1-64 letters, digits, '.', '_' or '-'")]
    IntegratorName(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No random bytes.
    #[error("the system random generator failed")]
    Random,
}

/// The ACL file (`acl_file`).
pub fn acl(gateway_user: &str, integrators: &[String]) -> String {
    let mut out = String::new();
    out.push_str("# devtel broker access, written by `devtel-gateway broker-access`.\n");
    out.push_str(
        "# The gateway: all telemetry and statuses in, acknowledgements and documents out.\n",
    );
    let _ = writeln!(out, "user {gateway_user}");
    for line in [
        "topic read devtel/v1/telemetry/#",
        "topic read devtel/v1/collectors/#",
        "topic write devtel/v1/acks/#",
        "topic readwrite devtel/v1/units/#",
        "topic readwrite devtel/v1/devices/#",
        "topic write devtel/v1/deadletter/#",
    ] {
        let _ = writeln!(out, "{line}");
    }
    for integrator in integrators {
        out.push_str("\n# An integrator: the documents, read only.\n");
        let _ = writeln!(out, "user {integrator}");
        for line in [
            "topic read devtel/v1/units/#",
            "topic read devtel/v1/devices/#",
        ] {
            let _ = writeln!(out, "{line}");
        }
    }
    out.push_str("\n# Every site's user (its name is the site id): its own topics only.\n");
    for line in [
        "pattern write devtel/v1/telemetry/%u/#",
        "pattern readwrite devtel/v1/collectors/%u",
        "pattern read devtel/v1/acks/%u/#",
    ] {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// One line of the password file (`password_file`): Mosquitto's PBKDF2-SHA512 format,
/// `user:$7$iterations$salt$hash` in standard Base64.
pub fn passwd_line(user: &str, password: &str, salt: &[u8; 12]) -> String {
    let mut hash = [0u8; 64];
    let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        iterations,
        salt,
        password.as_bytes(),
        &mut hash,
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "{user}:$7${ITERATIONS}${}${}",
        b64.encode(salt),
        b64.encode(hash)
    )
}

/// What [`write`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Users whose password was made now.
    pub new_users: Vec<String>,
    /// Users whose password file was there already (kept).
    pub kept_users: Vec<String>,
}

/// Writes into `dir`: `acl`, `passwd` (hashes), `mosquitto.conf` (the lines to include) and
/// `passwords/{user}` (each user's password, mode 0600, for the collector's
/// `[mqtt] password_file`), for the gateway, every site and every integrator. A user's
/// existing password file is kept, so running it again after adding a site changes no
/// other site's password.
///
/// # Errors
/// [`AccessError`].
pub fn write(
    dir: &Path,
    sites: &[String],
    gateway_user: &str,
    integrators: &[String],
) -> Result<Written, AccessError> {
    if sites.is_empty() {
        return Err(AccessError::NoSites);
    }
    if let Some(s) = sites.iter().find(|s| *s == gateway_user) {
        return Err(AccessError::SiteIsGateway(s.clone()));
    }
    for (i, name) in integrators.iter().enumerate() {
        let plain = (1..=64).contains(&name.len())
            && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !plain {
            return Err(AccessError::IntegratorName(name.clone()));
        }
        if name == gateway_user || sites.contains(name) || integrators[..i].contains(name) {
            return Err(AccessError::IntegratorTaken(name.clone()));
        }
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AccessError::Io { path, source }
    };
    let secrets = dir.join("passwords");
    std::fs::create_dir_all(&secrets).map_err(io(&secrets))?;
    restrict(&secrets, 0o700).map_err(io(&secrets))?;
    let rng = ring::rand::SystemRandom::new();
    let random = |n: usize| -> Result<Vec<u8>, AccessError> {
        let mut bytes = vec![0u8; n];
        ring::rand::SecureRandom::fill(&rng, &mut bytes).map_err(|_| AccessError::Random)?;
        Ok(bytes)
    };
    let mut written = Written {
        new_users: Vec::new(),
        kept_users: Vec::new(),
    };
    let mut passwd = String::new();
    let users = std::iter::once(gateway_user)
        .chain(sites.iter().map(String::as_str))
        .chain(integrators.iter().map(String::as_str));
    for user in users {
        let file = secrets.join(user);
        let password = match std::fs::read_to_string(&file) {
            Ok(text) if !text.trim().is_empty() => {
                written.kept_users.push(user.to_string());
                text.trim().to_string()
            }
            _ => {
                let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random(24)?);
                write_private(&file, format!("{password}\n").as_bytes()).map_err(io(&file))?;
                written.new_users.push(user.to_string());
                password
            }
        };
        let mut salt = [0u8; 12];
        salt.copy_from_slice(&random(12)?);
        passwd.push_str(&passwd_line(user, &password, &salt));
        passwd.push('\n');
    }
    let passwd_path = dir.join("passwd");
    write_private(&passwd_path, passwd.as_bytes()).map_err(io(&passwd_path))?;
    let acl_path = dir.join("acl");
    std::fs::write(&acl_path, acl(gateway_user, integrators)).map_err(io(&acl_path))?;
    let conf_path = dir.join("mosquitto.conf");
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let conf = format!(
        "# Include in the listener's configuration (written by `devtel-gateway broker-access`).\nallow_anonymous false\npassword_file {}\nacl_file {}\n",
        abs(&passwd_path).display(),
        abs(&acl_path).display()
    );
    std::fs::write(&conf_path, conf).map_err(io(&conf_path))?;
    Ok(written)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    restrict(path, 0o600)
}

fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_line_is_mosquittos_pbkdf2_format() {
        // Computed independently: Python's hashlib.pbkdf2_hmac("sha512", b"secret",
        // bytes(range(12)), 101).
        let salt: [u8; 12] = core::array::from_fn(|i| i as u8);
        assert_eq!(
            passwd_line("site-a", "secret", &salt),
            "site-a:$7$101$AAECAwQFBgcICQoL$Xr99N9ym9ys8TWxis5ajETJq6EVYzmc6nb8t3pUYnPBbCAbICS4xejTltonXWCtJNBvA+By+TXUqU6qCblO00w=="
        );
    }

    #[test]
    fn files_are_written_once_per_user_and_passwords_kept() {
        let dir = std::env::temp_dir().join(format!("devtel-access-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sites = vec!["a".to_string()];
        let first = write(&dir, &sites, DEFAULT_GATEWAY_USER, &[]).unwrap();
        assert_eq!(first.new_users, [DEFAULT_GATEWAY_USER, "a"]);
        let a = std::fs::read_to_string(dir.join("passwords/a")).unwrap();
        let more = vec!["a".to_string(), "b".to_string()];
        let erp = vec!["erp".to_string()];
        let second = write(&dir, &more, DEFAULT_GATEWAY_USER, &erp).unwrap();
        assert_eq!(second.new_users, ["b", "erp"]);
        assert_eq!(std::fs::read_to_string(dir.join("passwords/a")).unwrap(), a);
        let passwd = std::fs::read_to_string(dir.join("passwd")).unwrap();
        assert_eq!(passwd.lines().count(), 4);
        // The integrator reads the documents, and is given nothing else by name.
        let acl = std::fs::read_to_string(dir.join("acl")).unwrap();
        let block: Vec<&str> = acl
            .lines()
            .skip_while(|l| *l != "user erp")
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(
            block,
            [
                "user erp",
                "topic read devtel/v1/units/#",
                "topic read devtel/v1/devices/#"
            ]
        );
        assert!(!passwd.contains(a.trim()), "hashes only");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("passwords/b"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write(&dir, &[], DEFAULT_GATEWAY_USER, &[]).is_err());
        assert!(write(
            &dir,
            &[DEFAULT_GATEWAY_USER.to_string()],
            DEFAULT_GATEWAY_USER,
            &[]
        )
        .is_err());
        // An integrator may not take a site's name (it could publish as that site), nor
        // write lines into the ACL.
        for bad in [
            "a",
            DEFAULT_GATEWAY_USER,
            "erp\ntopic readwrite #",
            "",
            "x y",
        ] {
            let name = vec![bad.to_string(), "erp".to_string()];
            assert!(
                write(&dir, &more, DEFAULT_GATEWAY_USER, &name).is_err(),
                "{bad:?}"
            );
        }
        let twice = vec!["erp".to_string(), "erp".to_string()];
        assert!(write(&dir, &more, DEFAULT_GATEWAY_USER, &twice).is_err());
    }
}
