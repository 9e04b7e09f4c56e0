//! The dashboard's two languages: German (the default: the users are German public
//! administrations) and English. Labels, the words for the codes the documents carry (status,
//! conditions, supply states, ...), and numbers and dates in each locale's format. Pure.

use jiff::civil::Date;

/// A language of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Deutsch.
    De,
    /// English.
    En,
}

impl Lang {
    /// The `lang` attribute and switch value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    /// `de` or `en`; anything else is `None`.
    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().as_str() {
            "de" => Some(Lang::De),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The preferred of German and English in an `Accept-Language` header (by q-value, then
    /// order); German when it names neither.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',').take(32) {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::parse(primary) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::De, |(_, l)| l)
    }

    /// The other language (the switch).
    pub fn other(self) -> Lang {
        match self {
            Lang::De => Lang::En,
            Lang::En => Lang::De,
        }
    }

    /// Picks the German or the English text.
    pub fn t(self, de: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::De => de,
            Lang::En => en,
        }
    }

    /// An integer with the locale's thousands separator: `12.345` / `12,345`.
    pub fn int(self, n: i64) -> String {
        let digits = n.unsigned_abs().to_string();
        let sep = match self {
            Lang::De => '.',
            Lang::En => ',',
        };
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(sep);
            }
            out.push(c);
        }
        if n < 0 {
            out.insert(0, '-');
        }
        out
    }

    /// A decimal with `decimals` places: `99,95` / `99.95`.
    pub fn dec(self, v: f64, decimals: usize) -> String {
        if !v.is_finite() {
            return "–".into();
        }
        let s = format!("{:.*}", decimals, v.abs());
        let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
        let int: i64 = int.parse().unwrap_or(0);
        let mut out = self.int(int);
        if v < 0.0 && (int != 0 || frac.chars().any(|c| c != '0')) {
            out.insert(0, '-');
        }
        if !frac.is_empty() {
            out.push(match self {
                Lang::De => ',',
                Lang::En => '.',
            });
            out.push_str(frac);
        }
        out
    }

    /// A percentage: `99,95 %` / `99.95%`.
    pub fn percent(self, v: f64, decimals: usize) -> String {
        match self {
            Lang::De => format!("{} %", self.dec(v, decimals)),
            Lang::En => format!("{}%", self.dec(v, decimals)),
        }
    }

    /// Cents as money: `1.234,56 €` / `€1,234.56`.
    pub fn money(self, cents: i64) -> String {
        let euros = self.int(cents.abs() / 100);
        let c = (cents.abs() % 100) as u8;
        let sign = if cents < 0 { "-" } else { "" };
        match self {
            Lang::De => format!("{sign}{euros},{c:02} €"),
            Lang::En => format!("{sign}€{euros}.{c:02}"),
        }
    }

    /// A date: `30.11.2026` / `30 Nov 2026`.
    pub fn date(self, d: Date) -> String {
        match self {
            Lang::De => d.strftime("%d.%m.%Y").to_string(),
            Lang::En => d.strftime("%-d %b %Y").to_string(),
        }
    }

    /// A short day for chart axes: `30.11.` / `30 Nov`.
    pub fn day(self, d: Date) -> String {
        match self {
            Lang::De => d.strftime("%d.%m.").to_string(),
            Lang::En => d.strftime("%-d %b").to_string(),
        }
    }

    /// A month: `November 2026` in the language.
    pub fn month(self, d: Date) -> String {
        const DE: [&str; 12] = [
            "Januar",
            "Februar",
            "März",
            "April",
            "Mai",
            "Juni",
            "Juli",
            "August",
            "September",
            "Oktober",
            "November",
            "Dezember",
        ];
        const EN: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let i = usize::try_from(d.month() - 1).unwrap_or(0).min(11);
        let name = match self {
            Lang::De => DE[i],
            Lang::En => EN[i],
        };
        format!("{name} {}", d.year())
    }

    /// A local date and time: `30.11.2026, 17:05` / `30 Nov 2026, 17:05`.
    pub fn datetime(self, z: &jiff::Zoned) -> String {
        format!("{}, {}", self.date(z.date()), z.strftime("%H:%M"))
    }

    /// The words for a device status.
    pub fn status(self, code: &str) -> &'static str {
        match code {
            "ok" => self.t("in Ordnung", "OK"),
            "warning" => self.t("Warnung", "Warning"),
            "error" => self.t("Störung", "Error"),
            "unreachable" => self.t("nicht erreichbar", "Unreachable"),
            _ => self.t("unbekannt", "Unknown"),
        }
    }

    /// The words for a device kind (plural for headings).
    pub fn kinds(self, code: &str) -> &'static str {
        match code {
            "copier" => self.t("Kopierer und Drucker", "Copiers and printers"),
            "phone" => self.t("Telefone", "Phones"),
            "dock" => self.t("Dockingstationen (Switches)", "Docking stations (switches)"),
            _ => self.t("Sonstige", "Other"),
        }
    }

    /// The words for a printer condition (hrPrinterDetectedErrorState bit).
    pub fn condition(self, code: &str) -> &'static str {
        match code {
            "lowPaper" => self.t("Papier fast leer", "Paper low"),
            "noPaper" => self.t("Kein Papier", "Out of paper"),
            "lowToner" => self.t("Toner fast leer", "Toner low"),
            "noToner" => self.t("Kein Toner", "Out of toner"),
            "doorOpen" => self.t("Klappe offen", "Door open"),
            "jammed" => self.t("Papierstau", "Paper jam"),
            "offline" => self.t("Offline", "Offline"),
            "serviceRequested" => self.t("Wartung angefordert", "Service requested"),
            "inputTrayMissing" => self.t("Papierfach fehlt", "Input tray missing"),
            "outputTrayMissing" => self.t("Ausgabefach fehlt", "Output tray missing"),
            "markerSupplyMissing" => self.t("Verbrauchsmaterial fehlt", "Supply missing"),
            "outputNearFull" => self.t("Ausgabefach fast voll", "Output tray almost full"),
            "outputFull" => self.t("Ausgabefach voll", "Output tray full"),
            "inputTrayEmpty" => self.t("Papierfach leer", "Input tray empty"),
            "overduePreventMaint" => self.t("Wartung überfällig", "Maintenance overdue"),
            _ => self.t("Sonstiger Zustand", "Other condition"),
        }
    }

    /// The words for a supply state.
    pub fn supply_state(self, code: &str) -> &'static str {
        match code {
            "ok" => self.t("ausreichend", "sufficient"),
            "low" => self.t("fast leer", "low"),
            "empty" => self.t("leer", "empty"),
            "almost_full" => self.t("fast voll", "almost full"),
            "full" => self.t("voll", "full"),
            "some_remaining" => self.t("Rest vorhanden", "some remaining"),
            "no_restriction" => self.t("ohne Angabe", "not restricted"),
            _ => self.t("unbekannt", "unknown"),
        }
    }

    /// The words for a colorant name.
    pub fn colour(self, code: &str) -> String {
        let c = code.trim().to_ascii_lowercase();
        match c.as_str() {
            "black" => self.t("Schwarz", "Black").into(),
            "cyan" => self.t("Cyan", "Cyan").into(),
            "magenta" => self.t("Magenta", "Magenta").into(),
            "yellow" => self.t("Gelb", "Yellow").into(),
            _ => code.to_string(),
        }
    }

    /// The words for why a device did not answer.
    pub fn cause(self, code: &str) -> &'static str {
        match code {
            "timeout" => self.t("keine Antwort", "no answer"),
            "network" => self.t("Netzwerkfehler", "network error"),
            "auth" => self.t("Anmeldung abgelehnt (SNMP)", "login refused (SNMP)"),
            "bad_response" => self.t("fehlerhafte Antwort", "bad answer"),
            _ => self.t("unbekannt", "unknown"),
        }
    }

    /// The words for the device status (hrDeviceStatus) and printer state (hrPrinterStatus).
    pub fn device_state(self, code: &str) -> &'static str {
        match code {
            "running" => self.t("in Betrieb", "running"),
            "warning" => self.t("Warnung", "warning"),
            "testing" => self.t("im Test", "testing"),
            "down" => self.t("ausgefallen", "down"),
            "idle" => self.t("bereit", "idle"),
            "printing" => self.t("druckt", "printing"),
            "warmup" => self.t("wärmt auf", "warming up"),
            "other" => self.t("sonstiges", "other"),
            _ => self.t("unbekannt", "unknown"),
        }
    }

    /// The words for a note of the monthly report (`marks` in its JSON).
    pub fn mark(self, code: &str) -> &'static str {
        match code {
            "first_reading" => self.t("erster Zählerstand im Monat", "first reading in the month"),
            "no_reading" => self.t("kein Zählerstand im Monat", "no reading in the month"),
            "reset" => self.t("Zähler zurückgesetzt", "counter reset"),
            "wrap" => self.t("Zählerüberlauf", "counter wrap"),
            "replaced" => self.t("Gerät getauscht", "device replaced"),
            "no_price" => self.t("kein Preis", "no price"),
            _ => "",
        }
    }

    /// The words for a seat's occupancy.
    pub fn occupancy(self, code: &str) -> &'static str {
        match code {
            "occupied" => self.t("belegt", "occupied"),
            "idle" => self.t("Gerät ohne Verbindung", "device, no link"),
            "empty" => self.t("frei", "free"),
            "uplink" => self.t("Uplink", "uplink"),
            _ => self.t("unbekannt", "unknown"),
        }
    }

    /// The words for a phone line's registration.
    pub fn registration(self, code: &str) -> &'static str {
        match code {
            "registered" => self.t("angemeldet", "registered"),
            "not_registered" => self.t("nicht angemeldet", "not registered"),
            _ => self.t("unbekannt", "unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_dates_in_each_locale() {
        assert_eq!(Lang::De.int(1_234_567), "1.234.567");
        assert_eq!(Lang::En.int(-1_234), "-1,234");
        assert_eq!(Lang::De.int(999), "999");
        assert_eq!(Lang::De.percent(99.946, 2), "99,95 %");
        assert_eq!(Lang::En.percent(99.9, 1), "99.9%");
        assert_eq!(Lang::De.money(123_456), "1.234,56 €");
        assert_eq!(Lang::En.money(-5), "-€0.05");
        let d: Date = "2026-11-03".parse().unwrap();
        assert_eq!(Lang::De.date(d), "03.11.2026");
        assert_eq!(Lang::En.date(d), "3 Nov 2026");
        assert_eq!(Lang::De.month(d), "November 2026");
        assert_eq!(Lang::De.dec(-0.04, 1), "0,0");
    }

    #[test]
    fn accept_language_picks_by_quality_and_defaults_to_german() {
        assert_eq!(
            Lang::from_accept_language("en-GB,en;q=0.9,de;q=0.8"),
            Lang::En
        );
        assert_eq!(
            Lang::from_accept_language("fr-FR, de;q=0.5, en;q=0.4"),
            Lang::De
        );
        assert_eq!(Lang::from_accept_language("fr"), Lang::De);
        assert_eq!(Lang::from_accept_language(""), Lang::De);
        assert_eq!(Lang::from_accept_language("en;q=0, de;q=0.1"), Lang::De);
    }
}
