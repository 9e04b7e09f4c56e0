//! The administrative hierarchy (district office > department > office > team): configured
//! units with parents and cost centres, resolved once at start. Pure.
//!
//! A reading names its unit id. When units are configured, a reading for an id that is not
//! configured goes to the [`UNASSIGNED`] bucket (counted and visible, never dropped). When no
//! unit is configured at all, every id a collector sends is taken as a top-level unit, so a
//! first installation works before the hierarchy is written down.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The bucket of devices whose unit is not configured.
pub const UNASSIGNED: &str = "unassigned";

/// One configured unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitDef {
    /// Id used by collectors (`unit = "..."` of a device), e.g. `ba.fb2.it`.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The parent unit's id; none for a top-level unit.
    #[serde(default)]
    pub parent: Option<String>,
    /// Cost centre (Kostenstelle) for reports.
    #[serde(default)]
    pub cost_centre: Option<String>,
}

/// A unit list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitsError {
    /// Two units share an id.
    #[error("unit {0:?} is defined twice")]
    Duplicate(String),
    /// A parent is not defined.
    #[error("unit {0:?} names parent {1:?}, which is not defined")]
    UnknownParent(String, String),
    /// Parents form a loop.
    #[error("unit {0:?} is its own ancestor")]
    Cycle(String),
    /// The id is not a valid identifier or is reserved.
    #[error("unit id {0:?} must be 1 to 64 characters of letters, digits, '.', '_' and '-', and not \"unassigned\"")]
    BadId(String),
}

/// The resolved hierarchy.
#[derive(Debug, Clone, Default)]
pub struct Units {
    defs: BTreeMap<String, UnitDef>,
    children: BTreeMap<String, Vec<String>>,
}

impl Units {
    /// Validates `defs`: unique valid ids, defined parents, no cycles.
    ///
    /// # Errors
    /// The first [`UnitsError`] found.
    pub fn new(defs: Vec<UnitDef>) -> Result<Self, UnitsError> {
        let mut map = BTreeMap::new();
        for d in defs {
            if d.id == UNASSIGNED || devtel_protocol::topic::validate_segment(&d.id).is_err() {
                return Err(UnitsError::BadId(d.id));
            }
            if map.contains_key(&d.id) {
                return Err(UnitsError::Duplicate(d.id));
            }
            map.insert(d.id.clone(), d);
        }
        let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in map.values() {
            if let Some(p) = &d.parent {
                if !map.contains_key(p) {
                    return Err(UnitsError::UnknownParent(d.id.clone(), p.clone()));
                }
                children.entry(p.clone()).or_default().push(d.id.clone());
            }
            // Walk up; more steps than units means a loop.
            let mut cur = d.parent.as_deref();
            let mut steps = 0;
            while let Some(p) = cur {
                steps += 1;
                if p == d.id || steps > map.len() {
                    return Err(UnitsError::Cycle(d.id.clone()));
                }
                cur = map.get(p).and_then(|u| u.parent.as_deref());
            }
        }
        Ok(Units {
            defs: map,
            children,
        })
    }

    /// Whether units are configured (strict mode).
    pub fn is_configured(&self) -> bool {
        !self.defs.is_empty()
    }

    /// The unit a reading claiming `claimed` is counted in: the claimed id when configured (or
    /// when nothing is configured), else [`UNASSIGNED`].
    pub fn resolve<'a>(&self, claimed: &'a str) -> &'a str {
        if !self.is_configured() || self.defs.contains_key(claimed) {
            claimed
        } else {
            UNASSIGNED
        }
    }

    /// The definition of a configured unit.
    pub fn get(&self, id: &str) -> Option<&UnitDef> {
        self.defs.get(id)
    }

    /// Calls `f` with `id` and its ancestors, nearest first, as [`Units::lineage`] lists them
    /// but without allocating (a broken hierarchy with a cycle ends after one step per
    /// configured unit; an ancestor may then come more than once).
    pub fn each_in_lineage(&self, id: &str, mut f: impl FnMut(&str)) {
        f(id);
        let mut cur = self.defs.get(id).and_then(|d| d.parent.as_deref());
        let mut steps = 0;
        while let Some(p) = cur {
            if p == id || steps >= self.defs.len() {
                break;
            }
            f(p);
            steps += 1;
            cur = self.defs.get(p).and_then(|d| d.parent.as_deref());
        }
    }

    /// `id` and its ancestors, nearest first.
    pub fn lineage(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut cur = self.defs.get(id).and_then(|d| d.parent.clone());
        while let Some(p) = cur {
            if out.contains(&p) {
                break;
            }
            cur = self.defs.get(&p).and_then(|d| d.parent.clone());
            out.push(p);
        }
        out
    }

    /// Configured children of `id`, sorted.
    pub fn children(&self, id: &str) -> &[String] {
        self.children.get(id).map(Vec::as_slice).unwrap_or(&[])
    }

    /// All configured units.
    pub fn defs(&self) -> impl Iterator<Item = &UnitDef> {
        self.defs.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(id: &str, parent: Option<&str>) -> UnitDef {
        UnitDef {
            id: id.into(),
            name: None,
            parent: parent.map(Into::into),
            cost_centre: None,
        }
    }

    #[test]
    fn hierarchy_resolves_and_rolls_up() {
        let u = Units::new(vec![
            def("ba", None),
            def("ba.fb2", Some("ba")),
            def("ba.fb2.it", Some("ba.fb2")),
            def("ba.fb3", Some("ba")),
        ])
        .unwrap();
        assert_eq!(u.lineage("ba.fb2.it"), ["ba.fb2.it", "ba.fb2", "ba"]);
        for id in ["ba.fb2.it", "ba", "nowhere"] {
            let mut seen = Vec::new();
            u.each_in_lineage(id, |p| seen.push(p.to_string()));
            assert_eq!(seen, u.lineage(id));
        }
        assert_eq!(u.children("ba"), ["ba.fb2", "ba.fb3"]);
        assert_eq!(u.resolve("ba.fb3"), "ba.fb3");
        assert_eq!(u.resolve("ba.fb9"), UNASSIGNED);
        let open = Units::default();
        assert_eq!(open.resolve("anything"), "anything");
    }

    #[test]
    fn broken_hierarchies_are_named() {
        assert_eq!(
            Units::new(vec![def("a", None), def("a", None)]).unwrap_err(),
            UnitsError::Duplicate("a".into())
        );
        assert_eq!(
            Units::new(vec![def("a", Some("b"))]).unwrap_err(),
            UnitsError::UnknownParent("a".into(), "b".into())
        );
        assert!(matches!(
            Units::new(vec![def("a", Some("b")), def("b", Some("a"))]).unwrap_err(),
            UnitsError::Cycle(_)
        ));
        assert!(matches!(
            Units::new(vec![def("a/b", None)]).unwrap_err(),
            UnitsError::BadId(_)
        ));
        assert!(matches!(
            Units::new(vec![def(UNASSIGNED, None)]).unwrap_err(),
            UnitsError::BadId(_)
        ));
    }
}
