//! Which site speaks for which collector and device. Pure: the decisions of the ingest check,
//! with the claims they make handed to the store (which keeps them, `owners`) and read back
//! at start.
//!
//! Rules (the README's "Security and privacy"):
//! - A collector id belongs to one site: the one `[[sites]]` lists it under, else the first
//!   site it published under. Under another site it is rejected as
//!   [`Rejection::ForeignCollector`].
//! - A device belongs to one site: the one `[[sites]]` lists it under, else the first site that
//!   reported it. A reading of it from another site is rejected as
//!   [`Rejection::ForeignDevice`], so nobody on the broker takes over another site's device.
//! - When `[[sites]]` is given, it is the whole list: a site not on it is
//!   [`Rejection::UnknownSite`], and a listed site speaks through its listed collectors only.
//! - What is claimed is bounded: beyond `max_collectors` collectors or `max_devices` devices,
//!   a new one is rejected ([`Rejection::TooManyCollectors`], [`Rejection::TooManyDevices`])
//!   instead of growing the gateway's maps without end.

use std::collections::{BTreeSet, HashMap};

use crate::ingest::Rejection;

/// Default of `[ingest] max_devices`.
pub const DEFAULT_MAX_DEVICES: usize = 100_000;
/// Default of `[ingest] max_collectors`.
pub const DEFAULT_MAX_COLLECTORS: usize = 10_000;

/// What a claim is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnerKind {
    /// A collector id.
    Collector,
    /// A device id.
    Device,
}

impl OwnerKind {
    /// The name kept in the store.
    pub const fn name(self) -> &'static str {
        match self {
            OwnerKind::Collector => "collector",
            OwnerKind::Device => "device",
        }
    }

    /// Position in per-kind tables.
    const fn index(self) -> usize {
        match self {
            OwnerKind::Collector => 0,
            OwnerKind::Device => 1,
        }
    }

    /// The kind of a stored name.
    pub fn from_name(name: &str) -> Option<OwnerKind> {
        match name {
            "collector" => Some(OwnerKind::Collector),
            "device" => Some(OwnerKind::Device),
            _ => None,
        }
    }
}

/// A first sighting: `id` of `kind` belongs to `site` from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Collector or device.
    pub kind: OwnerKind,
    /// Its id.
    pub id: String,
    /// The site it belongs to.
    pub site: String,
}

/// One `[[sites]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteEntry {
    /// The site id (the `{site}` of its topics).
    pub id: String,
    /// The collectors that publish for it.
    pub collectors: Vec<String>,
    /// Devices that belong to it (optional: others belong to the first site reporting them).
    pub devices: Vec<String>,
}

/// The configured and the claimed owners, per kind (indexed by [`OwnerKind::index`]), by id.
#[derive(Debug, Clone)]
pub struct Owners {
    sites: BTreeSet<String>,
    configured: [HashMap<String, String>; 2],
    claimed: [HashMap<String, String>; 2],
    max_collectors: usize,
    max_devices: usize,
}

impl Default for Owners {
    fn default() -> Self {
        Owners::new(&[], DEFAULT_MAX_COLLECTORS, DEFAULT_MAX_DEVICES)
    }
}

impl Owners {
    /// Owners from the configuration (no claims yet).
    pub fn new(sites: &[SiteEntry], max_collectors: usize, max_devices: usize) -> Owners {
        let mut configured: [HashMap<String, String>; 2] = Default::default();
        for site in sites {
            for c in &site.collectors {
                configured[OwnerKind::Collector.index()].insert(c.clone(), site.id.clone());
            }
            for d in &site.devices {
                configured[OwnerKind::Device.index()].insert(d.clone(), site.id.clone());
            }
        }
        Owners {
            sites: sites.iter().map(|s| s.id.clone()).collect(),
            configured,
            claimed: Default::default(),
            max_collectors,
            max_devices,
        }
    }

    /// Takes a stored claim (at start). A claim the configuration overrides is kept but not
    /// used; beyond the bounds claims are still taken (they were made under other bounds).
    pub fn restore(&mut self, claim: Claim) {
        self.claimed[claim.kind.index()].insert(claim.id, claim.site);
    }

    /// Whether `id` has an owner here (configured or claimed).
    pub fn knows(&self, kind: OwnerKind, id: &str) -> bool {
        self.owner(kind, id).is_some()
    }

    /// Claimed collectors and devices.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.claimed[OwnerKind::Collector.index()].len(),
            self.claimed[OwnerKind::Device.index()].len(),
        )
    }

    /// The site `collector` belongs to, where known.
    pub fn site_of_collector(&self, collector: &str) -> Option<&str> {
        self.owner(OwnerKind::Collector, collector)
    }

    /// Looked up without allocating: this runs for every envelope.
    fn owner(&self, kind: OwnerKind, id: &str) -> Option<&str> {
        let k = kind.index();
        self.configured[k]
            .get(id)
            .or_else(|| self.claimed[k].get(id))
            .map(String::as_str)
    }

    /// Whether `site`'s `collector` may speak for `devices`; the first sightings it makes are
    /// taken (and pushed to `claims`, for the store) only when all is well.
    ///
    /// # Errors
    /// The [`Rejection`]: unknown site, foreign collector or device, or a bound reached.
    pub fn admit<'a>(
        &mut self,
        site: &str,
        collector: &str,
        devices: impl IntoIterator<Item = &'a str> + Clone,
        claims: &mut Vec<Claim>,
    ) -> Result<(), Rejection> {
        if !self.sites.is_empty() && !self.sites.contains(site) {
            return Err(Rejection::UnknownSite);
        }
        let mut new: Vec<(OwnerKind, &str)> = Vec::new();
        match self.owner(OwnerKind::Collector, collector) {
            Some(owner) if owner != site => return Err(Rejection::ForeignCollector),
            Some(_) => {}
            // A listed site speaks through its listed collectors only.
            None if !self.sites.is_empty() => return Err(Rejection::ForeignCollector),
            None => new.push((OwnerKind::Collector, collector)),
        }
        for device in devices.clone() {
            match self.owner(OwnerKind::Device, device) {
                Some(owner) if owner != site => return Err(Rejection::ForeignDevice),
                Some(_) => {}
                None if !new.contains(&(OwnerKind::Device, device)) => {
                    new.push((OwnerKind::Device, device));
                }
                None => {}
            }
        }
        let new_collectors = new
            .iter()
            .filter(|(k, _)| *k == OwnerKind::Collector)
            .count();
        let (collectors, devices) = self.counts();
        if collectors + new_collectors > self.max_collectors {
            return Err(Rejection::TooManyCollectors);
        }
        if devices + (new.len() - new_collectors) > self.max_devices {
            return Err(Rejection::TooManyDevices);
        }
        for (kind, id) in new {
            let claim = Claim {
                kind,
                id: id.to_string(),
                site: site.to_string(),
            };
            self.restore(claim.clone());
            claims.push(claim);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(
        o: &mut Owners,
        site: &str,
        collector: &str,
        devices: &[&str],
    ) -> Result<usize, Rejection> {
        let mut claims = Vec::new();
        o.admit(site, collector, devices.iter().copied(), &mut claims)
            .map(|()| claims.len())
    }

    #[test]
    fn the_first_site_owns_its_collector_and_devices() {
        let mut o = Owners::default();
        assert_eq!(admit(&mut o, "a", "ca", &["d1"]), Ok(2));
        assert_eq!(admit(&mut o, "a", "ca", &["d1"]), Ok(0), "nothing new");
        // Site b with a collector of its own may not report a's device ...
        assert_eq!(
            admit(&mut o, "b", "cb", &["d1"]),
            Err(Rejection::ForeignDevice)
        );
        // ... nor publish as a's collector, not even for a device of its own.
        assert_eq!(
            admit(&mut o, "b", "ca", &["d2"]),
            Err(Rejection::ForeignCollector)
        );
        // A rejection claims nothing: cb and d2 are still free.
        assert_eq!(o.counts(), (1, 1));
        assert_eq!(admit(&mut o, "b", "cb", &["d2"]), Ok(2));
        assert_eq!(o.counts(), (2, 2));
    }

    #[test]
    fn stored_claims_hold_after_a_restart() {
        let mut o = Owners::default();
        let mut claims = Vec::new();
        o.admit("a", "ca", ["d1"], &mut claims).unwrap();
        let mut again = Owners::default();
        for c in claims {
            again.restore(c);
        }
        assert_eq!(
            admit(&mut again, "b", "cb", &["d1"]),
            Err(Rejection::ForeignDevice)
        );
        assert_eq!(admit(&mut again, "a", "ca", &["d1"]), Ok(0));
    }

    #[test]
    fn the_sites_list_is_the_whole_list_and_overrides_first_sightings() {
        let sites = [
            SiteEntry {
                id: "a".into(),
                collectors: vec!["ca".into()],
                devices: vec!["moved".into()],
            },
            SiteEntry {
                id: "b".into(),
                collectors: vec!["cb".into()],
                devices: vec![],
            },
        ];
        let mut o = Owners::new(&sites, 10, 10);
        // "moved" was first seen at b, but the configuration gives it to a.
        o.restore(Claim {
            kind: OwnerKind::Device,
            id: "moved".into(),
            site: "b".into(),
        });
        assert_eq!(
            admit(&mut o, "b", "cb", &["moved"]),
            Err(Rejection::ForeignDevice)
        );
        assert_eq!(admit(&mut o, "a", "ca", &["moved"]), Ok(0));
        assert_eq!(
            admit(&mut o, "c", "cc", &["x"]),
            Err(Rejection::UnknownSite)
        );
        // A listed site speaks through its listed collectors only.
        assert_eq!(
            admit(&mut o, "a", "rogue", &["x"]),
            Err(Rejection::ForeignCollector)
        );
        assert_eq!(
            admit(&mut o, "b", "ca", &["x"]),
            Err(Rejection::ForeignCollector)
        );
        assert_eq!(admit(&mut o, "b", "cb", &["x"]), Ok(1));
    }

    #[test]
    fn claims_are_bounded() {
        let mut o = Owners::new(&[], 2, 3);
        assert_eq!(admit(&mut o, "a", "c1", &["d1", "d2"]), Ok(3));
        assert_eq!(
            admit(&mut o, "a", "c1", &["d3", "d4"]),
            Err(Rejection::TooManyDevices)
        );
        assert_eq!(admit(&mut o, "a", "c1", &["d3"]), Ok(1));
        assert_eq!(admit(&mut o, "a", "c2", &["d1"]), Ok(1));
        assert_eq!(
            admit(&mut o, "a", "c3", &["d1"]),
            Err(Rejection::TooManyCollectors)
        );
        // Known ones still pass at the bounds.
        assert_eq!(admit(&mut o, "a", "c2", &["d1", "d2", "d3"]), Ok(0));
        assert_eq!(o.counts(), (2, 3));
    }
}
