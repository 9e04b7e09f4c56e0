//! devtel's own simulated fleet, for the demo when no recordings are at hand: copiers of
//! several vendors with their real OID layouts (Printer-MIB, HOST-RESOURCES-MIB and each
//! vendor's private page counters, as the mappings in [`devtel_devices`] read them), phone
//! adapters whose lines register, and an access switch whose dock seats fill in the morning
//! and empty in the evening.
//!
//! Life follows a simulated clock ([`SimClock`]: by default one real second is one simulated
//! minute, a working day passes in about 11 minutes): page counters advance by a working-day
//! rhythm, toner drains with the pages and the cartridge is replaced when it is empty, a
//! paper jam happens now and then, and one copier is switched off every afternoon.
//!
//! Everything here is pure and deterministic (a seeded generator per device): [`Living::at`]
//! gives a device's varbinds at a simulated minute, or `None` while it is off.

use crate::snmp::{oid, Value, VarbindSet};

/// Simulated minutes since Monday 00:00 of the simulated week.
pub type SimMinute = u64;

/// Minutes in a day.
const DAY: u64 = 24 * 60;

/// Maps real time to simulated minutes: `speed` simulated minutes per real second, starting
/// at `start` (Monday 07:00 by default, so the morning begins at once).
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    /// Simulated minutes per real second.
    pub speed: u32,
    /// The simulated minute at the clock's start.
    pub start: SimMinute,
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock {
            speed: 1,
            start: 7 * 60,
        }
    }
}

impl SimClock {
    /// The simulated minute `elapsed` after the start.
    pub fn minute(&self, elapsed: std::time::Duration) -> SimMinute {
        self.start
            + elapsed.as_secs() * u64::from(self.speed)
            + u64::from(elapsed.subsec_millis()) * u64::from(self.speed) / 1000
    }
}

/// How busy the office is at `minute` (0 to 1): nothing at night and at weekends, a morning
/// and an afternoon peak, a dip at lunch.
pub fn activity(minute: SimMinute) -> f64 {
    let day = (minute / DAY) % 7;
    if day >= 5 {
        return 0.0;
    }
    let h = (minute % DAY) as f64 / 60.0;
    match h {
        h if !(7.0..18.0).contains(&h) => 0.0,
        h if h < 8.0 => 0.3,
        h if h < 11.5 => 1.0,
        h if h < 13.0 => 0.4,
        h if h < 16.0 => 0.9,
        _ => 0.3,
    }
}

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A copier family with its private counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopierVendor {
    /// Ricoh: the self-describing counter table (ricohEngCounterType / value).
    Ricoh,
    /// HP: total, mono and colour scalars.
    Hp,
    /// Kyocera: the service counter and counters by function and colour mode.
    Kyocera,
}

/// A simulated device.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Device id (also the community the simulator answers it under).
    pub id: String,
    /// `copier`, `phone` or `dock` (the collector's device kind).
    pub kind: &'static str,
    /// The administrative unit.
    pub unit: String,
    /// What it is.
    pub model: Model,
}

/// The device models.
#[derive(Debug, Clone)]
pub enum Model {
    /// A copier.
    Copier {
        /// Its family.
        vendor: CopierVendor,
        /// Model name.
        name: &'static str,
        /// Colour or mono.
        colour: bool,
        /// Pages per busy minute.
        rate: f64,
        /// Switched off every working day from 14:00 to 15:30 (simulated).
        goes_off: bool,
    },
    /// A Grandstream HT802 phone adapter with two lines.
    PhoneAdapter,
    /// An access switch with `seats` dock ports and an uplink.
    DockSwitch {
        /// Dock ports.
        seats: u32,
    },
}

/// The demo fleet: seven copiers of three vendors, two phone adapters, two dock switches.
pub fn demo_fleet() -> Vec<Spec> {
    let copier = |id: &str, unit: &str, vendor, name, colour, rate, goes_off| Spec {
        id: id.into(),
        kind: "copier",
        unit: unit.into(),
        model: Model::Copier {
            vendor,
            name,
            colour,
            rate,
            goes_off,
        },
    };
    use CopierVendor::{Hp, Kyocera, Ricoh};
    vec![
        copier(
            "mfp-rathaus-eg",
            "buergeramt.empfang",
            Ricoh,
            "MP C3004",
            true,
            2.5,
            false,
        ),
        copier(
            "mfp-rathaus-1og",
            "buergeramt.meldewesen",
            Ricoh,
            "IM C3000",
            true,
            1.8,
            false,
        ),
        copier(
            "mfp-jugendamt-2og",
            "jugendamt.team-1",
            Hp,
            "Color LaserJet MFP M480",
            true,
            1.2,
            false,
        ),
        copier(
            "printer-jugendamt-3og",
            "jugendamt.team-2",
            Hp,
            "LaserJet Pro M404",
            false,
            0.9,
            true,
        ),
        copier(
            "mfp-ordnungsamt",
            "ordnungsamt",
            Kyocera,
            "TASKalfa 3253ci",
            true,
            2.0,
            false,
        ),
        copier(
            "printer-kasse",
            "finanzen.kasse",
            Kyocera,
            "ECOSYS P3145dn",
            false,
            1.1,
            false,
        ),
        copier("mfp-bauamt", "bauamt", Ricoh, "MP 3555", false, 1.5, false),
        Spec {
            id: "ata-foyer".into(),
            kind: "phone",
            unit: "buergeramt.empfang".into(),
            model: Model::PhoneAdapter,
        },
        Spec {
            id: "ata-jugendamt".into(),
            kind: "phone",
            unit: "jugendamt".into(),
            model: Model::PhoneAdapter,
        },
        Spec {
            id: "switch-jugendamt-desks".into(),
            kind: "dock",
            unit: "jugendamt.team-1".into(),
            model: Model::DockSwitch { seats: 12 },
        },
        Spec {
            id: "switch-bauamt-desks".into(),
            kind: "dock",
            unit: "bauamt".into(),
            model: Model::DockSwitch { seats: 8 },
        },
    ]
}

/// A supply: (description, colorant, capacity in pages of 5 % coverage).
const BLACK: (&str, &str, f64) = ("Black Toner", "black", 20_000.0);
const COLOURS: [(&str, &str, f64); 3] = [
    ("Cyan Toner", "cyan", 15_000.0),
    ("Magenta Toner", "magenta", 15_000.0),
    ("Yellow Toner", "yellow", 15_000.0),
];

/// One device's simulated life, advanced minute by minute.
#[derive(Debug, Clone)]
pub struct Living {
    spec: Spec,
    seed: u64,
    rng: Rng,
    minute: SimMinute,
    /// Pages, mono and colour, as fractions accumulate.
    mono: f64,
    colour: f64,
    /// Share of pages that were copies (the rest printed).
    copies: f64,
    /// Supply levels in percent of capacity (black first).
    levels: Vec<f64>,
    /// Cartridges replaced so far.
    replaced: u32,
    /// A jam until this minute.
    jam_until: Option<SimMinute>,
}

impl Living {
    /// A device at simulated minute `start`, seeded by its position in the fleet.
    pub fn new(spec: Spec, seed: u64, start: SimMinute) -> Living {
        let mut rng = Rng::new(seed);
        let supplies = match spec.model {
            Model::Copier { colour: true, .. } => 4,
            Model::Copier { .. } => 1,
            _ => 0,
        };
        let levels = (0..supplies).map(|_| 15.0 + 80.0 * rng.unit()).collect();
        let mono = 20_000.0 + rng.below(400_000) as f64;
        let colour = match spec.model {
            Model::Copier { colour: true, .. } => mono * (0.2 + 0.3 * rng.unit()),
            _ => 0.0,
        };
        Living {
            spec,
            seed,
            rng,
            minute: start,
            mono,
            colour,
            copies: mono * 0.3,
            levels,
            replaced: 0,
            jam_until: None,
        }
    }

    /// The device's description.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Advances to `minute` (never back) and returns the varbinds it answers then, or `None`
    /// while it is switched off.
    pub fn at(&mut self, minute: SimMinute) -> Option<VarbindSet> {
        // A long pause (the demo suspended) advances at most a simulated week.
        self.minute = self.minute.max(minute.saturating_sub(7 * DAY));
        while self.minute < minute {
            self.minute += 1;
            self.step();
        }
        match self.spec.model {
            Model::Copier {
                vendor,
                name,
                colour,
                goes_off,
                ..
            } => {
                let off = goes_off && activity(minute) > 0.0 && {
                    let h = minute % DAY;
                    (14 * 60..15 * 60 + 30).contains(&h)
                };
                (!off).then(|| self.copier(vendor, name, colour))
            }
            Model::PhoneAdapter => Some(self.phone()),
            Model::DockSwitch { seats } => Some(self.switch(seats)),
        }
    }

    /// One simulated minute.
    fn step(&mut self) {
        let Model::Copier { colour, rate, .. } = self.spec.model else {
            return;
        };
        let busy = activity(self.minute);
        if busy == 0.0 {
            return;
        }
        let pages = rate * busy * (0.5 + self.rng.unit());
        let colour_share = if colour { 0.35 } else { 0.0 };
        self.mono += pages * (1.0 - colour_share);
        self.colour += pages * colour_share;
        self.copies += pages * 0.3;
        // Toner: black with every page, colours with the colour pages.
        for (i, level) in self.levels.iter_mut().enumerate() {
            let (used, capacity) = if i == 0 {
                (pages, BLACK.2)
            } else {
                (pages * colour_share, COLOURS[i - 1].2)
            };
            // The toner goes a bit faster than the nominal yield (coverage over 5 %).
            *level -= 100.0 * used * 1.6 / capacity * 40.0;
            if *level <= 0.0 {
                // Empty: someone puts in a new cartridge.
                *level = 100.0;
                self.replaced += 1;
            }
        }
        if self.jam_until.is_some_and(|t| t <= self.minute) {
            self.jam_until = None;
        }
        if self.jam_until.is_none() && self.rng.unit() < 0.004 * busy {
            self.jam_until = Some(self.minute + 5 + self.rng.below(20));
        }
    }

    fn copier(&self, vendor: CopierVendor, name: &str, colour: bool) -> VarbindSet {
        let mut vb = VarbindSet::new();
        let put = |vb: &mut VarbindSet, o: &str, v: Value| vb.insert(oid(o), v);
        let text = |s: &str| Value::OctetString(s.as_bytes().to_vec());
        let (brand, object_id, serial_prefix) = match vendor {
            CopierVendor::Ricoh => ("RICOH", "1.3.6.1.4.1.367.1.1", "E17"),
            CopierVendor::Hp => ("HP", "1.3.6.1.4.1.11.2.3.9.1", "CNB"),
            CopierVendor::Kyocera => ("KYOCERA", "1.3.6.1.4.1.1347.41", "R4P"),
        };
        let serial = format!("{serial_prefix}{:07}", self.seed * 7_919 % 10_000_000);
        let model = format!("{brand} {name}");
        put(
            &mut vb,
            "1.3.6.1.2.1.1.1.0",
            text(&format!("{model} (devtel simulator)")),
        );
        put(
            &mut vb,
            "1.3.6.1.2.1.1.2.0",
            Value::ObjectId(Box::new(oid(object_id))),
        );
        put(
            &mut vb,
            "1.3.6.1.2.1.1.3.0",
            Value::TimeTicks(self.uptime()),
        );
        put(&mut vb, "1.3.6.1.2.1.1.5.0", text(&self.spec.id));
        // HOST-RESOURCES: the printer is device 1.
        let jammed = self.jam_until.is_some();
        let low = self.levels.iter().any(|l| *l < 10.0);
        put(
            &mut vb,
            "1.3.6.1.2.1.25.3.2.1.2.1",
            Value::ObjectId(Box::new(oid("1.3.6.1.2.1.25.3.1.5"))),
        );
        put(&mut vb, "1.3.6.1.2.1.25.3.2.1.3.1", text(&model));
        // hrDeviceStatus: running(2), warning(3).
        let status = if jammed || low { 3 } else { 2 };
        put(&mut vb, "1.3.6.1.2.1.25.3.2.1.5.1", Value::Integer(status));
        // hrPrinterStatus: idle(3), printing(4); other(1) while jammed.
        let printing = activity(self.minute) > 0.5;
        let printer_status = if jammed {
            1
        } else if printing {
            4
        } else {
            3
        };
        put(
            &mut vb,
            "1.3.6.1.2.1.25.3.5.1.1.1",
            Value::Integer(printer_status),
        );
        // hrPrinterDetectedErrorState: bit 2 lowToner, bit 5 jammed (first octet, MSB first).
        let bits = (if low { 0x20 } else { 0 }) | (if jammed { 0x04 } else { 0 });
        put(
            &mut vb,
            "1.3.6.1.2.1.25.3.5.1.2.1",
            Value::OctetString(vec![bits, 0]),
        );
        put(&mut vb, "1.3.6.1.2.1.43.5.1.1.17.1", text(&serial));
        // Marker: impressions(7), life count.
        let total = self.total();
        put(&mut vb, "1.3.6.1.2.1.43.10.2.1.3.1.1", Value::Integer(7));
        put(
            &mut vb,
            "1.3.6.1.2.1.43.10.2.1.4.1.1",
            Value::Counter32(total as u32),
        );
        // Supplies: marker 1, colorant index, class consumed(3), type toner(3),
        // description, unit percent(19), capacity 100, level.
        let mut supplies = vec![BLACK];
        if colour {
            supplies.extend(COLOURS);
        }
        for (i, ((descr, colorant, _), level)) in supplies.iter().zip(&self.levels).enumerate() {
            let n = i as u32 + 1;
            let s = |col: u32| format!("1.3.6.1.2.1.43.11.1.1.{col}.1.{n}");
            put(&mut vb, &s(2), Value::Integer(1));
            put(&mut vb, &s(3), Value::Integer(i64::from(n)));
            put(&mut vb, &s(4), Value::Integer(3));
            put(&mut vb, &s(5), Value::Integer(3));
            put(&mut vb, &s(6), text(&format!("{brand} {descr}")));
            put(&mut vb, &s(7), Value::Integer(19));
            put(&mut vb, &s(8), Value::Integer(100));
            put(
                &mut vb,
                &s(9),
                Value::Integer(level.round().clamp(0.0, 100.0) as i64),
            );
            put(
                &mut vb,
                &format!("1.3.6.1.2.1.43.12.1.1.4.1.{n}"),
                text(colorant),
            );
        }
        // Trays: sheet feed (4), max 500 sheets, level, status available (0), name.
        for tray in 1..=2u32 {
            let t = |col: u32| format!("1.3.6.1.2.1.43.8.2.1.{col}.1.{tray}");
            let level = 500 - ((total + u64::from(tray) * 97) % 450) as i64;
            put(&mut vb, &t(2), Value::Integer(4));
            put(&mut vb, &t(9), Value::Integer(500));
            put(&mut vb, &t(10), Value::Integer(level));
            put(&mut vb, &t(11), Value::Integer(0));
            put(&mut vb, &t(13), text(&format!("Tray {tray}")));
        }
        put(
            &mut vb,
            "1.3.6.1.2.1.43.16.5.1.2.1.1",
            text(if jammed {
                "Paper jam: open cover A"
            } else {
                "Ready"
            }),
        );
        if jammed {
            // prtAlert: critical(3), trained(4)... group mediaPath(13), location, code jam(8).
            let a = |col: u32| format!("1.3.6.1.2.1.43.18.1.1.{col}.1.1");
            put(&mut vb, &a(2), Value::Integer(3));
            put(&mut vb, &a(3), Value::Integer(4));
            put(&mut vb, &a(4), Value::Integer(13));
            put(&mut vb, &a(5), Value::Integer(1));
            put(&mut vb, &a(6), Value::Integer(0));
            put(&mut vb, &a(7), Value::Integer(8));
            put(&mut vb, &a(8), text("Paper jam"));
            put(&mut vb, &a(9), Value::TimeTicks(self.uptime()));
        }
        self.vendor_counters(&mut vb, vendor, &serial);
        vb
    }

    /// The private counters, as INTEGERs like the real devices answer them.
    fn vendor_counters(&self, vb: &mut VarbindSet, vendor: CopierVendor, serial: &str) {
        let (mono, colour, total) = (self.mono as i64, self.colour as i64, self.total() as i64);
        let copies = (self.copies as i64).min(total);
        let text = |s: &str| Value::OctetString(s.as_bytes().to_vec());
        match vendor {
            CopierVendor::Hp => {
                let hp = "1.3.6.1.4.1.11.2.3.9.4.2.1";
                vb.insert(oid(&format!("{hp}.4.1.2.5.0")), Value::Integer(total));
                vb.insert(oid(&format!("{hp}.4.1.2.6.0")), Value::Integer(mono));
                if colour > 0 {
                    vb.insert(oid(&format!("{hp}.4.1.2.7.0")), Value::Integer(colour));
                }
                vb.insert(oid(&format!("{hp}.1.3.3.0")), text(serial));
            }
            CopierVendor::Ricoh => {
                // ricohEngCounterEntry: type (col 2), value (col 9); 10 total, 200 copy,
                // 201 copy B/W, 203 copy full colour, 400 print, 401 print B/W, 403 print
                // full colour.
                let copy_share = copies as f64 / total.max(1) as f64;
                let split = |v: i64| {
                    (
                        (v as f64 * copy_share) as i64,
                        v - (v as f64 * copy_share) as i64,
                    )
                };
                let (copy_mono, print_mono) = split(mono);
                let (copy_colour, print_colour) = split(colour);
                let rows: [(i64, i64); 7] = [
                    (10, total),
                    (200, copy_mono + copy_colour),
                    (201, copy_mono),
                    (203, copy_colour),
                    (400, print_mono + print_colour),
                    (401, print_mono),
                    (403, print_colour),
                ];
                let entry = "1.3.6.1.4.1.367.3.2.1.2.19.5.1";
                for (i, (ty, value)) in rows.iter().enumerate() {
                    let n = i as u32 + 1;
                    vb.insert(oid(&format!("{entry}.2.{n}")), Value::Integer(*ty));
                    vb.insert(oid(&format!("{entry}.9.{n}")), Value::Integer(*value));
                }
                vb.insert(oid("1.3.6.1.4.1.367.3.2.1.2.19.1.0"), Value::Integer(total));
                vb.insert(oid("1.3.6.1.4.1.367.3.2.1.2.1.4.0"), text(serial));
            }
            CopierVendor::Kyocera => {
                vb.insert(
                    oid("1.3.6.1.4.1.1347.43.10.1.1.12.1.1"),
                    Value::Integer(total),
                );
                let f = "1.3.6.1.4.1.1347.42.3.1.1.1.1";
                vb.insert(oid(&format!("{f}.1")), Value::Integer(total - copies));
                vb.insert(oid(&format!("{f}.2")), Value::Integer(copies));
                // kmMFPColorModeCounterItem.<function>.<mode>: 1 B/W, 3 full colour.
                let c = "1.3.6.1.4.1.1347.42.3.1.2.1.1";
                let copy_share = copies as f64 / total.max(1) as f64;
                let part = |v: i64, copy: bool| {
                    let c = (v as f64 * copy_share) as i64;
                    if copy {
                        c
                    } else {
                        v - c
                    }
                };
                vb.insert(oid(&format!("{c}.1.1")), Value::Integer(part(mono, false)));
                vb.insert(oid(&format!("{c}.2.1")), Value::Integer(part(mono, true)));
                if colour > 0 {
                    vb.insert(
                        oid(&format!("{c}.1.3")),
                        Value::Integer(part(colour, false)),
                    );
                    vb.insert(oid(&format!("{c}.2.3")), Value::Integer(part(colour, true)));
                }
                vb.insert(oid("1.3.6.1.4.1.1347.43.5.1.1.28.1"), text(serial));
            }
        }
    }

    fn total(&self) -> u64 {
        (self.mono as u64) + (self.colour as u64)
    }

    /// sysUpTime in 1/100 s of simulated time since the simulated Monday (wraps like the real
    /// one).
    fn uptime(&self) -> u32 {
        (self.minute.wrapping_mul(6000) % (1 << 32)) as u32
    }

    fn phone(&self) -> VarbindSet {
        let mut vb = VarbindSet::new();
        let text = |s: &str| Value::OctetString(s.as_bytes().to_vec());
        vb.insert(oid("1.3.6.1.2.1.1.1.0"), text("Grandstream HT8XX"));
        vb.insert(
            oid("1.3.6.1.2.1.1.2.0"),
            Value::ObjectId(Box::new(oid("1.3.6.1.4.1.42397.1"))),
        );
        vb.insert(oid("1.3.6.1.2.1.1.3.0"), Value::TimeTicks(self.uptime()));
        vb.insert(oid("1.3.6.1.2.1.1.5.0"), text("HT802"));
        let mac = [
            0x00,
            0x0b,
            0x82,
            0x10,
            (self.seed >> 8) as u8,
            self.seed as u8,
        ];
        vb.insert(
            oid("1.3.6.1.2.1.2.2.1.6.1"),
            Value::OctetString(mac.to_vec()),
        );
        let gs = "1.3.6.1.4.1.42397.1.2";
        vb.insert(oid(&format!("{gs}.3.2.0")), text("1.0.43.11"));
        vb.insert(oid(&format!("{gs}.3.3.0")), text("1.0.43.11"));
        let busy = activity(self.minute);
        for line in 1..=2u32 {
            // Line 1 is the reception's, always registered; line 2 (a home-office forward)
            // registers during working hours only.
            let registered = line == 1 || busy > 0.0;
            let off_hook = busy > 0.0 && (self.minute / 7 + u64::from(line) + self.seed) % 5 == 0;
            let port = |col: u32| oid(&format!("{gs}.2.{col}.{line}.0"));
            vb.insert(port(1), text(if off_hook { "Off Hook" } else { "On Hook" }));
            vb.insert(
                port(2),
                text(if registered {
                    "Registered"
                } else {
                    "Not Registered"
                }),
            );
            vb.insert(port(7), text(&format!("30{}{line}", 100 + self.seed % 900)));
        }
        vb
    }

    /// Whether dock seat `seat` is taken at this minute: each seat has its own arrival and
    /// departure per day, and a seat stays free now and then (leave, home office).
    fn seated(&self, seat: u32) -> bool {
        if activity(self.minute) == 0.0 && !(7 * 60..19 * 60).contains(&(self.minute % DAY)) {
            return false;
        }
        let day = self.minute / DAY;
        if day % 7 >= 5 {
            return false;
        }
        let mut r = Rng::new(self.seed * 1_000 + u64::from(seat) * 31 + day);
        if r.unit() < 0.2 {
            return false;
        }
        let arrive = 7 * 60 + 15 + r.below(150);
        let leave = 15 * 60 + r.below(180);
        (arrive..leave).contains(&(self.minute % DAY))
    }

    fn switch(&self, seats: u32) -> VarbindSet {
        let mut vb = VarbindSet::new();
        let text = |s: &str| Value::OctetString(s.as_bytes().to_vec());
        vb.insert(
            oid("1.3.6.1.2.1.1.1.0"),
            text("TP-Link JetStream 24-Port Gigabit L2 Managed Switch (devtel simulator)"),
        );
        vb.insert(
            oid("1.3.6.1.2.1.1.2.0"),
            Value::ObjectId(Box::new(oid("1.3.6.1.4.1.11863.5.1"))),
        );
        vb.insert(oid("1.3.6.1.2.1.1.3.0"), Value::TimeTicks(self.uptime()));
        let own = [
            0x50,
            0xd4,
            0xf7,
            0x20,
            (self.seed >> 8) as u8,
            self.seed as u8,
        ];
        vb.insert(
            oid("1.3.6.1.2.1.17.1.1.0"),
            Value::OctetString(own.to_vec()),
        );
        let ports = seats + 1;
        for port in 1..=ports {
            let uplink = port == ports;
            let up = uplink || self.seated(port);
            let i = |col: u32| oid(&format!("1.3.6.1.2.1.2.2.1.{col}.{port}"));
            let x = |col: u32| oid(&format!("1.3.6.1.2.1.31.1.1.1.{col}.{port}"));
            vb.insert(i(2), text(&format!("gigabitEthernet 1/0/{port}")));
            vb.insert(i(3), Value::Integer(6));
            vb.insert(i(6), Value::OctetString(own.to_vec()));
            vb.insert(i(8), Value::Integer(if up { 1 } else { 2 }));
            vb.insert(i(9), Value::TimeTicks(0));
            vb.insert(x(1), text(&format!("gi{port}")));
            vb.insert(x(15), Value::Gauge32(if up { 1000 } else { 0 }));
            let alias = if uplink {
                "uplink".to_string()
            } else {
                format!("Desk {port}")
            };
            vb.insert(x(18), text(&alias));
            vb.insert(
                oid(&format!("1.3.6.1.2.1.17.1.4.1.2.{port}")),
                Value::Integer(i64::from(port)),
            );
            let mut macs: Vec<[u8; 6]> = Vec::new();
            if uplink {
                // The building's other switches and the router behind the uplink.
                for n in 0..12u8 {
                    macs.push([0x00, 0x1a, 0x2b, 0x00, self.seed as u8, n]);
                }
            } else if up {
                // A docked laptop: the dock's NIC.
                macs.push([0x8c, 0xae, 0x4c, self.seed as u8, port as u8, 0x01]);
            }
            for mac in macs {
                let index: Vec<u32> = mac.iter().map(|b| u32::from(*b)).collect();
                vb.insert(
                    oid("1.3.6.1.2.1.17.4.3.1.2").child(&index),
                    Value::Integer(i64::from(port)),
                );
            }
        }
        vb
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtel_devices::{copier, dock, phone, DeviceIdentity};
    use devtel_protocol::{Condition, Level, Occupancy, Registration, Vendor};

    fn identity(spec: &Spec) -> DeviceIdentity {
        DeviceIdentity {
            device: spec.id.as_str().try_into().unwrap(),
            unit: "u".try_into().unwrap(),
        }
    }

    fn fleet() -> Vec<Living> {
        demo_fleet()
            .into_iter()
            .enumerate()
            .map(|(i, s)| Living::new(s, i as u64 + 1, 0))
            .collect()
    }

    /// Monday is day 0; `at(day, h, m)` is the simulated minute.
    fn at(day: u64, h: u64, m: u64) -> SimMinute {
        day * DAY + h * 60 + m
    }

    #[test]
    fn every_simulated_device_maps_as_its_kind_with_its_vendor() {
        for mut d in fleet() {
            let spec = d.spec().clone();
            let vb = d.at(at(0, 9, 0)).expect("answers in the morning");
            let detected = devtel_devices::detect(&vb).map(|k| k.name());
            assert_eq!(detected, Some(spec.kind), "{}", spec.id);
            match spec.kind {
                "copier" => {
                    let r = copier::map(&identity(&spec), &vb).unwrap();
                    let Model::Copier { vendor, colour, .. } = spec.model else {
                        panic!()
                    };
                    let want = match vendor {
                        CopierVendor::Ricoh => Vendor::Ricoh,
                        CopierVendor::Hp => Vendor::Hp,
                        CopierVendor::Kyocera => Vendor::Kyocera,
                    };
                    assert_eq!(r.vendor, Some(want), "{}", spec.id);
                    assert!(r.serial.is_some() && r.model.is_some(), "{r:?}");
                    assert_eq!(r.supplies.len(), if colour { 4 } else { 1 }, "{}", spec.id);
                    let c = &r.counters;
                    let (total, mono) = (c.total.unwrap(), c.mono.unwrap());
                    assert_eq!(c.colour.unwrap_or(0) + mono, total, "{}: {c:?}", spec.id);
                    assert_eq!(
                        c.colour.is_some_and(|v| v > 0),
                        colour,
                        "{}: {c:?}",
                        spec.id
                    );
                    assert!(!r.markers.is_empty(), "{}", spec.id);
                }
                "phone" => {
                    assert!(phone::is_phone(&vb));
                    let r = phone::map(&identity(&spec), &vb).unwrap();
                    assert_eq!(r.vendor, Some(Vendor::Grandstream));
                    assert_eq!(r.lines.len(), 2);
                    assert!(r
                        .lines
                        .iter()
                        .all(|l| l.registration == Registration::Registered));
                }
                "dock" => {
                    assert!(dock::is_switch(&vb));
                    let m = dock::map(&identity(&spec), &dock::Selection::default(), &vb).unwrap();
                    let uplinks = m
                        .reading
                        .seats
                        .iter()
                        .filter(|s| s.occupancy == Occupancy::Uplink);
                    assert_eq!(uplinks.count(), 1, "{:?}", m.reading.seats);
                }
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn pages_follow_the_working_day_and_toner_is_replaced_when_empty() {
        let mut d = fleet().remove(0);
        let spec = d.spec().clone();
        let pages = |d: &mut Living, m| {
            let vb = d.at(m).unwrap();
            copier::map(&identity(&spec), &vb)
                .unwrap()
                .counters
                .total
                .unwrap()
        };
        let night = pages(&mut d, at(0, 3, 0));
        assert_eq!(pages(&mut d, at(0, 6, 59)), night, "nobody prints at night");
        let morning = pages(&mut d, at(0, 10, 0));
        assert!(morning > night + 100, "{night} -> {morning}");
        let evening = pages(&mut d, at(0, 18, 0));
        assert!(evening > morning);
        assert_eq!(pages(&mut d, at(1, 6, 0)), evening, "nor after hours");
        let friday = pages(&mut d, at(4, 18, 0));
        assert_eq!(pages(&mut d, at(6, 23, 0)), friday, "nor at the weekend");
        // A working week empties cartridges (the simulation drains them fast): replaced.
        assert!(d.replaced > 0);
        let vb = d.at(at(7, 10, 0)).unwrap();
        let r = copier::map(&identity(&spec), &vb).unwrap();
        for s in &r.supplies {
            assert!(matches!(s.level, Some(Level::Value(0..=100))), "{s:?}");
        }
    }

    #[test]
    fn a_jam_shows_in_the_error_bits_and_one_copier_is_off_in_the_afternoon() {
        let mut jams = 0;
        for mut d in fleet().into_iter().filter(|d| d.spec().kind == "copier") {
            let spec = d.spec().clone();
            for m in (at(0, 7, 0)..at(0, 18, 0)).step_by(3) {
                let Some(vb) = d.at(m) else {
                    let Model::Copier { goes_off, .. } = spec.model else {
                        panic!()
                    };
                    assert!(goes_off && (14 * 60..15 * 60 + 30).contains(&(m % DAY)));
                    continue;
                };
                let r = copier::map(&identity(&spec), &vb).unwrap();
                if r.status
                    .errors
                    .is_some_and(|e| e.contains(Condition::Jammed))
                {
                    jams += 1;
                    assert!(!r.alerts.is_empty(), "a jam alert");
                }
            }
        }
        assert!(jams > 0, "a jam now and then");
        let off = fleet()
            .into_iter()
            .filter_map(|mut d| d.at(at(0, 14, 30)).is_none().then_some(()))
            .count();
        assert_eq!(off, 1);
    }

    #[test]
    fn dock_seats_fill_in_the_morning_and_empty_in_the_evening() {
        let mut d = fleet()
            .into_iter()
            .find(|d| d.spec().kind == "dock")
            .unwrap();
        let spec = d.spec().clone();
        let mut occupied = |m| {
            let vb = d.at(m).unwrap();
            let r = dock::map(&identity(&spec), &dock::Selection::default(), &vb).unwrap();
            r.reading
                .seats
                .iter()
                .filter(|s| s.occupancy == Occupancy::Occupied)
                .count()
        };
        assert_eq!(occupied(at(0, 6, 0)), 0);
        let late_morning = occupied(at(0, 11, 0));
        assert!(late_morning >= 6, "{late_morning} of 12");
        assert_eq!(occupied(at(0, 19, 30)), 0);
        assert_eq!(occupied(at(5, 11, 0)), 0, "Saturday");
    }

    #[test]
    fn the_clock_runs_a_minute_per_second_from_monday_seven() {
        let c = SimClock::default();
        assert_eq!(c.minute(std::time::Duration::ZERO), 7 * 60);
        assert_eq!(
            c.minute(std::time::Duration::from_millis(90_500)),
            7 * 60 + 90
        );
        let fast = SimClock {
            speed: 10,
            start: 0,
        };
        assert_eq!(fast.minute(std::time::Duration::from_millis(1_500)), 15);
    }
}
