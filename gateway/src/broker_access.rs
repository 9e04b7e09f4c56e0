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
pub fn acl(gateway_user: &str, integrators: &[String], discovery: Option<&str>) -> String {
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
        "topic write devtel/v1/events/#",
    ] {
        let _ = writeln!(out, "{line}");
    }
    if let Some(prefix) = discovery {
        let _ = writeln!(out, "topic write {prefix}/#");
    }
    for integrator in integrators {
        out.push_str("\n# An integrator: the documents, read only.\n");
        let _ = writeln!(out, "user {integrator}");
        for line in [
            "topic read devtel/v1/units/#",
            "topic read devtel/v1/devices/#",
            "topic read devtel/v1/events/#",
            "topic read devtel/v1/collectors/+",
        ] {
            let _ = writeln!(out, "{line}");
        }
        if let Some(prefix) = discovery {
            let _ = writeln!(out, "topic read {prefix}/#");
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
    discovery: Option<&str>,
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
    std::fs::write(&acl_path, acl(gateway_user, integrators, discovery)).map_err(io(&acl_path))?;
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

/// Who a broker user is, for the embedded broker's checks (the same rules as [`acl`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The gateway itself.
    Gateway,
    /// A site's collectors: the user name is the site id.
    Site(String),
    /// An integrator: the documents, read only.
    Integrator,
}

impl Role {
    /// The role of `user`: the gateway's user, a configured site, else an integrator (a user
    /// of the password file that is neither).
    pub fn of(user: &str, gateway_user: &str, sites: &[String]) -> Role {
        if user == gateway_user {
            Role::Gateway
        } else if sites.iter().any(|s| s == user) {
            Role::Site(user.to_string())
        } else {
            Role::Integrator
        }
    }
}

/// Whether `role` may publish to `topic` (a topic name, no wildcards): the write rules of [`acl`].
pub fn may_publish(role: &Role, topic: &str) -> bool {
    if topic.contains(['+', '#']) || topic.starts_with('$') {
        return false;
    }
    let patterns: Vec<String> = match role {
        Role::Gateway => ["acks/#", "units/#", "devices/#", "deadletter/#", "events/#"]
            .iter()
            .map(|p| format!("devtel/v1/{p}"))
            .collect(),
        Role::Site(site) => vec![
            format!("devtel/v1/telemetry/{site}/#"),
            format!("devtel/v1/collectors/{site}"),
        ],
        Role::Integrator => Vec::new(),
    };
    patterns.iter().any(|p| covers(p, topic))
}

/// Whether `role` may subscribe to `filter` (a shared subscription `$share/{group}/{filter}`
/// is checked as its filter): allowed when every topic the filter matches is readable, the
/// read rules of [`acl`].
pub fn may_subscribe(role: &Role, filter: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((group, f)) if !group.is_empty() && !group.contains(['+', '#']) => f,
            _ => return false,
        },
        None => filter,
    };
    if filter.starts_with('$') {
        return false;
    }
    let patterns: Vec<String> = match role {
        Role::Gateway => ["telemetry/#", "collectors/#", "units/#", "devices/#"]
            .iter()
            .map(|p| format!("devtel/v1/{p}"))
            .collect(),
        Role::Site(site) => vec![
            format!("devtel/v1/collectors/{site}"),
            format!("devtel/v1/acks/{site}/#"),
        ],
        Role::Integrator => vec![
            "devtel/v1/units/#".into(),
            "devtel/v1/devices/#".into(),
            "devtel/v1/events/#".into(),
            // The collectors' statuses: Home Assistant's availability of a device.
            "devtel/v1/collectors/+".into(),
        ],
    };
    patterns.iter().any(|p| covers(p, filter))
}

/// Home Assistant discovery under `prefix` (when on): the gateway writes the configs, an
/// integrator (Home Assistant's user) reads them. `write`: a publish of a topic, else a
/// subscription to a filter.
pub fn may_use_discovery(role: &Role, prefix: Option<&str>, topic: &str, write: bool) -> bool {
    let Some(prefix) = prefix else {
        return false;
    };
    let pattern = format!("{prefix}/#");
    match (role, write) {
        (Role::Gateway, true) => !topic.contains(['+', '#']) && covers(&pattern, topic),
        (Role::Integrator, false) => covers(&pattern, topic),
        _ => false,
    }
}

/// Whether every topic that `filter` matches also matches `pattern` (both MQTT filters;
/// a topic name is a filter without wildcards).
pub fn covers(pattern: &str, filter: &str) -> bool {
    let mut p = pattern.split('/');
    let mut f = filter.split('/');
    loop {
        match (p.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(lit), Some(level)) if lit == level && !matches!(level, "+" | "#") => {}
            // "a/#" also matches "a": the filter ended where the pattern's "#" follows.
            (Some(_), None) => return false,
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A password file (`passwd`, as [`write`] makes it or `mosquitto_passwd` with `-H sha512-pbkdf2`):
/// user name to its hash.
#[derive(Clone, Default)]
pub struct Passwords(std::collections::BTreeMap<String, Hash>);

#[derive(Clone)]
struct Hash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Most users a password file may hold.
pub const MAX_USERS: usize = 100_000;

impl Passwords {
    /// Parses the file's text; blank lines and `#` comments are skipped.
    ///
    /// # Errors
    /// The line number and what is wrong with it (never the hash).
    pub fn parse(text: &str) -> Result<Passwords, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut users = std::collections::BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let (user, rest) = line
                .split_once(':')
                .ok_or_else(|| format!("line {n}: expected user:$7$iterations$salt$hash"))?;
            let parts: Vec<&str> = rest.split('$').collect();
            let [empty, "7", iterations, salt, hash] = parts[..] else {
                return Err(format!(
                    "line {n} ({user}): only PBKDF2-SHA512 hashes ($7$) are read"
                ));
            };
            let iterations = iterations
                .parse::<u32>()
                .ok()
                .and_then(NonZeroU32::new)
                .filter(|i| i.get() <= 10_000_000);
            let (Some(iterations), Ok(salt), Ok(hash)) =
                (iterations, b64.decode(salt), b64.decode(hash))
            else {
                return Err(format!(
                    "line {n} ({user}): unreadable iterations, salt or hash"
                ));
            };
            if !empty.is_empty() || hash.len() != 64 || salt.is_empty() || user.is_empty() {
                return Err(format!("line {n} ({user}): not a PBKDF2-SHA512 hash"));
            }
            if users.len() >= MAX_USERS {
                return Err(format!("more than {MAX_USERS} users"));
            }
            if users
                .insert(
                    user.to_string(),
                    Hash {
                        iterations,
                        salt,
                        hash,
                    },
                )
                .is_some()
            {
                return Err(format!("line {n}: user {user:?} appears twice"));
            }
        }
        Ok(Passwords(users))
    }

    /// Whether `user` is in the file with `password` (constant time in the hash).
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        self.0.get(user).is_some_and(|h| {
            ring::pbkdf2::verify(
                ring::pbkdf2::PBKDF2_HMAC_SHA512,
                h.iterations,
                &h.salt,
                password,
                &h.hash,
            )
            .is_ok()
        })
    }

    /// The users, sorted.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_publish_and_read_what_the_mosquitto_acl_grants_it() {
        let sites = vec!["a".to_string(), "b".to_string()];
        let a = Role::of("a", DEFAULT_GATEWAY_USER, &sites);
        let gw = Role::of(DEFAULT_GATEWAY_USER, DEFAULT_GATEWAY_USER, &sites);
        let erp = Role::of("erp", DEFAULT_GATEWAY_USER, &sites);
        assert_eq!(a, Role::Site("a".into()));
        assert_eq!((gw.clone(), erp.clone()), (Role::Gateway, Role::Integrator));
        // A site: its own telemetry and status, nobody else's, no documents.
        assert!(may_publish(&a, "devtel/v1/telemetry/a/u/d1"));
        assert!(may_publish(&a, "devtel/v1/collectors/a"));
        for t in [
            "devtel/v1/telemetry/b/u/d1",
            "devtel/v1/telemetry/ab/u/d1",
            "devtel/v1/collectors/b",
            "devtel/v1/units/u",
            "devtel/v1/acks/a/c",
            "devtel/v1/telemetry/a/+/d",
            "$SYS/x",
        ] {
            assert!(!may_publish(&a, t), "{t}");
        }
        assert!(may_subscribe(&a, "devtel/v1/acks/a/c1"));
        assert!(may_subscribe(&a, "devtel/v1/acks/a/#"));
        assert!(may_subscribe(&a, "devtel/v1/collectors/a"));
        for f in [
            "devtel/v1/acks/#",
            "devtel/v1/acks/+/c1",
            "devtel/v1/acks/b/c1",
            "devtel/v1/telemetry/#",
            "#",
            "devtel/v1/collectors/+",
            "$share/g/devtel/v1/telemetry/#",
        ] {
            assert!(!may_subscribe(&a, f), "{f}");
        }
        // The gateway: everything in, acks and documents out (also on a shared subscription).
        assert!(may_subscribe(&gw, "devtel/v1/telemetry/#"));
        assert!(may_subscribe(&gw, "$share/devtel/devtel/v1/telemetry/#"));
        assert!(may_subscribe(&gw, "devtel/v1/collectors/+"));
        assert!(may_publish(&gw, "devtel/v1/acks/a/c1"));
        assert!(may_publish(&gw, "devtel/v1/units/u"));
        assert!(!may_publish(&gw, "devtel/v1/telemetry/a/u/d"));
        assert!(!may_subscribe(&gw, "$share//devtel/v1/telemetry/#"));
        // An integrator: the documents, read only.
        assert!(may_subscribe(&erp, "devtel/v1/units/+"));
        assert!(may_subscribe(&erp, "devtel/v1/devices/#"));
        assert!(may_subscribe(&erp, "devtel/v1/events/#"));
        assert!(may_publish(&gw, "devtel/v1/events/u/d"));
        assert!(may_subscribe(&erp, "devtel/v1/collectors/+"));
        assert!(
            !may_subscribe(&erp, "devtel/v1/collectors/#"),
            "a status has no subtopics"
        );
        let ha = Some("homeassistant");
        assert!(may_use_discovery(
            &gw,
            ha,
            "homeassistant/sensor/x/y/config",
            true
        ));
        assert!(may_use_discovery(&erp, ha, "homeassistant/#", false));
        assert!(!may_use_discovery(
            &erp,
            ha,
            "homeassistant/sensor/x/y/config",
            true
        ));
        assert!(!may_use_discovery(&a, ha, "homeassistant/#", false));
        assert!(!may_use_discovery(
            &gw,
            None,
            "homeassistant/sensor/x/y/config",
            true
        ));
        assert!(!may_publish(&a, "devtel/v1/events/u/d"));
        assert!(!may_subscribe(&erp, "devtel/v1/#"));
        assert!(!may_subscribe(&erp, "devtel/v1/telemetry/#"));
        assert!(!may_publish(&erp, "devtel/v1/units/u"));
    }

    #[test]
    fn a_filter_is_covered_only_when_all_it_matches_is() {
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/b/c"));
        assert!(covers("a/#", "a/+/c"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/+", "a"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("a/b", "a/b/c"));
        assert!(covers("a/b", "a/b"));
    }

    #[test]
    fn the_password_file_written_is_read_and_verifies() {
        let salt: [u8; 12] = core::array::from_fn(|i| i as u8);
        let text = format!(
            "# comment\n\n{}\n{}\n",
            passwd_line("site-a", "secret", &salt),
            passwd_line("erp", "other", &salt)
        );
        let p = Passwords::parse(&text).unwrap();
        assert_eq!(p.users().collect::<Vec<_>>(), ["erp", "site-a"]);
        assert!(p.verify("site-a", b"secret"));
        assert!(!p.verify("site-a", b"other"));
        assert!(!p.verify("erp", b"secret"));
        assert!(!p.verify("nobody", b"secret"));
        assert!(format!("{p:?}").contains("site-a") && !format!("{p:?}").contains("$7$"));
        for bad in [
            "user",
            "user:$6$abc$def",
            "user:$7$0$AAAA$AAAA",
            "user:$7$101$!!$AAAA",
            "user:$7$101$AAECAwQFBgcICQoL$AAAA",
        ] {
            let err = Passwords::parse(bad).unwrap_err();
            assert!(err.starts_with("line 1"), "{bad}: {err}");
        }
        let twice = format!(
            "{}\n{}\n",
            passwd_line("a", "x", &salt),
            passwd_line("a", "y", &salt)
        );
        assert!(Passwords::parse(&twice).unwrap_err().contains("twice"));
    }

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
        let first = write(&dir, &sites, DEFAULT_GATEWAY_USER, &[], None).unwrap();
        assert_eq!(first.new_users, [DEFAULT_GATEWAY_USER, "a"]);
        let a = std::fs::read_to_string(dir.join("passwords/a")).unwrap();
        let more = vec!["a".to_string(), "b".to_string()];
        let erp = vec!["erp".to_string()];
        let second = write(&dir, &more, DEFAULT_GATEWAY_USER, &erp, None).unwrap();
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
                "topic read devtel/v1/devices/#",
                "topic read devtel/v1/events/#",
                "topic read devtel/v1/collectors/+"
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
        assert!(write(&dir, &[], DEFAULT_GATEWAY_USER, &[], None).is_err());
        assert!(write(
            &dir,
            &[DEFAULT_GATEWAY_USER.to_string()],
            DEFAULT_GATEWAY_USER,
            &[],
            None
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
                write(&dir, &more, DEFAULT_GATEWAY_USER, &name, None).is_err(),
                "{bad:?}"
            );
        }
        let twice = vec!["erp".to_string(), "erp".to_string()];
        assert!(write(&dir, &more, DEFAULT_GATEWAY_USER, &twice, None).is_err());
    }
}
