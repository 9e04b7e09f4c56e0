//! Prices for the monthly cost-allocation report: per page mono and colour and an optional
//! monthly fee per device, by device id, by model, or a default. Money is exact: amounts are
//! integers of a millionth of a euro (µEUR), costs are rounded to cents once per device line,
//! and every total is a sum of those lines. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Currency of every amount.
pub const CURRENCY: &str = "EUR";

/// A price or fee is at most this (µEUR): 10,000 EUR.
const MAX_MICRO: i64 = 10_000 * 1_000_000;

/// One `[[prices]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    /// The device this price is for.
    #[serde(default)]
    pub device: Option<String>,
    /// The model (as the device reports it, compared without case and surrounding blanks).
    #[serde(default)]
    pub model: Option<String>,
    /// EUR per mono page.
    pub mono: Amount,
    /// EUR per colour page.
    pub colour: Amount,
    /// EUR per device and month in which it reported.
    #[serde(default)]
    pub monthly_fee: Option<Amount>,
}

/// A number as TOML writes it (`1`, `0.012`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    /// An integer.
    Int(i64),
    /// A decimal.
    Float(f64),
}

/// A validated price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Price {
    /// µEUR per mono page.
    pub mono_micro: i64,
    /// µEUR per colour page.
    pub colour_micro: i64,
    /// Cents per device and month.
    pub monthly_fee_cents: i64,
}

/// Which entry a device's price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// Its own `device = ...` entry.
    Device,
    /// Its model's entry.
    Model,
    /// The entry with neither.
    Default,
}

/// The validated `[[prices]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prices {
    by_device: BTreeMap<String, Price>,
    by_model: BTreeMap<String, Price>,
    default: Option<Price>,
}

/// A `[[prices]]` entry that cannot be used; `key` names it (`prices[2].mono`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct PriceError {
    /// The key.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

fn micro(key: String, amount: Amount, decimals: u32) -> Result<i64, PriceError> {
    let scale = 10i64.pow(decimals);
    let err = |reason: String| PriceError {
        key: key.clone(),
        reason,
    };
    let value = match amount {
        Amount::Int(i) => i.checked_mul(scale),
        Amount::Float(f) => {
            if !f.is_finite() {
                return Err(err(format!("{f} is not a number")));
            }
            let scaled = f * scale as f64;
            let rounded = scaled.round();
            if (scaled - rounded).abs() > 1e-6 * scaled.abs().max(1.0) {
                return Err(err(format!("{f} has more than {decimals} decimal places")));
            }
            (rounded.abs() < 9e15).then_some(rounded as i64)
        }
    };
    match value {
        Some(v) if v < 0 => Err(err("must not be negative".into())),
        Some(v) if v <= MAX_MICRO / 1_000_000 * scale => Ok(v),
        _ => Err(err("must be at most 10000 EUR".into())),
    }
}

/// The key a model is looked up by.
fn model_key(model: &str) -> String {
    model.trim().to_lowercase()
}

impl Prices {
    /// Validates the entries: amounts ≥ 0 with at most 6 decimal places (per page) or 2
    /// (monthly fee), at most one of `device` / `model` per entry, no device, model or default
    /// twice.
    ///
    /// # Errors
    /// [`PriceError`] naming the entry and key.
    pub fn new(raw: &[RawPrice]) -> Result<Prices, PriceError> {
        let mut out = Prices::default();
        for (i, p) in raw.iter().enumerate() {
            let key = |k: &str| format!("prices[{i}].{k}");
            let price = Price {
                mono_micro: micro(key("mono"), p.mono, 6)?,
                colour_micro: micro(key("colour"), p.colour, 6)?,
                monthly_fee_cents: match p.monthly_fee {
                    Some(fee) => micro(key("monthly_fee"), fee, 2)?,
                    None => 0,
                },
            };
            let twice = |k: &str, what: &str| PriceError {
                key: key(k),
                reason: format!("{what} has a price already"),
            };
            match (&p.device, &p.model) {
                (Some(_), Some(_)) => {
                    return Err(PriceError {
                        key: key("model"),
                        reason: "an entry is for a device or for a model, not both".into(),
                    })
                }
                (Some(d), None) => {
                    if d.is_empty() || d.len() > 64 {
                        return Err(PriceError {
                            key: key("device"),
                            reason: "must be 1 to 64 characters".into(),
                        });
                    }
                    if out.by_device.insert(d.clone(), price).is_some() {
                        return Err(twice("device", &format!("device {d:?}")));
                    }
                }
                (None, Some(m)) => {
                    let k = model_key(m);
                    if k.is_empty() || k.len() > 128 {
                        return Err(PriceError {
                            key: key("model"),
                            reason: "must be 1 to 128 characters".into(),
                        });
                    }
                    if out.by_model.insert(k, price).is_some() {
                        return Err(twice("model", &format!("model {m:?}")));
                    }
                }
                (None, None) => {
                    if out.default.replace(price).is_some() {
                        return Err(PriceError {
                            key: format!("prices[{i}]"),
                            reason: "a second default price (an entry without device and model)"
                                .into(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether no price is configured.
    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty() && self.by_model.is_empty() && self.default.is_none()
    }

    /// The price of `device` of `model`: its own, else its model's, else the default.
    pub fn of(&self, device: &str, model: Option<&str>) -> Option<(PriceSource, Price)> {
        if let Some(p) = self.by_device.get(device) {
            return Some((PriceSource::Device, *p));
        }
        if let Some(p) = model.and_then(|m| self.by_model.get(&model_key(m))) {
            return Some((PriceSource::Model, *p));
        }
        self.default.map(|p| (PriceSource::Default, p))
    }
}

/// `micro` µEUR rounded to cents, halves away from zero.
pub fn micro_to_cents(micro: i128) -> i64 {
    let cents = (micro.abs() + 5_000) / 10_000;
    let cents = i64::try_from(cents).unwrap_or(i64::MAX);
    if micro < 0 {
        -cents
    } else {
        cents
    }
}

/// The cost of one device's month in cents: pages at the price, rounded once, plus the fee.
pub fn cost_cents(price: &Price, mono_pages: u64, colour_pages: u64) -> i64 {
    let micro = i128::from(mono_pages) * i128::from(price.mono_micro)
        + i128::from(colour_pages) * i128::from(price.colour_micro);
    micro_to_cents(micro).saturating_add(price.monthly_fee_cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Prices, PriceError> {
        #[derive(Deserialize)]
        struct Doc {
            prices: Vec<RawPrice>,
        }
        let doc: Doc = toml::from_str(text).unwrap();
        Prices::new(&doc.prices)
    }

    #[test]
    fn device_before_model_before_default_and_exact_money() {
        let p = parse(
            r#"
            [[prices]]
            mono = 0.012
            colour = 0.085
            [[prices]]
            model = " MX-3570N "
            mono = 0.009
            colour = 0.061
            monthly_fee = 25.5
            [[prices]]
            device = "sharp-1"
            mono = 0
            colour = 1
            "#,
        )
        .unwrap();
        let (src, price) = p.of("sharp-1", Some("MX-3570N")).unwrap();
        assert_eq!(src, PriceSource::Device);
        assert_eq!((price.mono_micro, price.colour_micro), (0, 1_000_000));
        let (src, price) = p.of("sharp-2", Some("mx-3570n")).unwrap();
        assert_eq!(src, PriceSource::Model);
        assert_eq!(price.monthly_fee_cents, 2_550);
        let (src, price) = p.of("hp-9", None).unwrap();
        assert_eq!(src, PriceSource::Default);
        // 1,234 × 0.012 + 567 × 0.085 = 14.808 + 48.195 = 63.003 EUR.
        assert_eq!(cost_cents(&price, 1_234, 567), 6_300);
        // 0.5 cent rounds up: 1 × 0.005.
        let half = Price {
            mono_micro: 5_000,
            colour_micro: 0,
            monthly_fee_cents: 0,
        };
        assert_eq!(cost_cents(&half, 1, 0), 1);
        assert!(Prices::default().of("x", None).is_none());
    }

    #[test]
    fn errors_name_the_entry_and_key() {
        for (text, key) in [
            ("[[prices]]\nmono = -0.01\ncolour = 0", "prices[0].mono"),
            ("[[prices]]\nmono = 0.0000001\ncolour = 0", "prices[0].mono"),
            ("[[prices]]\nmono = 0\ncolour = 1e300", "prices[0].colour"),
            ("[[prices]]\nmono = 0\ncolour = 0\nmonthly_fee = 1.005", "prices[0].monthly_fee"),
            ("[[prices]]\nmono = 0\ncolour = 0\n[[prices]]\nmono = 1\ncolour = 1", "prices[1]"),
            (
                "[[prices]]\ndevice = \"a\"\nmodel = \"b\"\nmono = 0\ncolour = 0",
                "prices[0].model",
            ),
            (
                "[[prices]]\nmodel = \"B\"\nmono = 0\ncolour = 0\n[[prices]]\nmodel = \"b\"\nmono = 0\ncolour = 0",
                "prices[1].model",
            ),
            ("[[prices]]\ndevice = \"\"\nmono = 0\ncolour = 0", "prices[0].device"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
        }
    }
}
