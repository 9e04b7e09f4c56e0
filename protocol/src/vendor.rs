//! Device vendors, identified by their IANA Private Enterprise Number (the `1.3.6.1.4.1.<PEN>`
//! prefix of sysObjectID), so that any vendor — known here or not — is carried exactly.

crate::code_enum! {
    /// A device vendor by IANA Private Enterprise Number. OEM brands that share a parent's
    /// private MIB tree (Lanier/Savin/Gestetner under Ricoh, UTAX/TA/Copystar under Kyocera,
    /// Develop under Konica Minolta) are reported as the parent, whose counters they expose.
    pub enum Vendor {
        // Append only: the variant index is the wire encoding.
        /// Cisco Systems (9)
        Cisco = 9 => "Cisco",
        /// Hewlett-Packard (11)
        Hp = 11 => "HP",
        /// Samsung (236)
        Samsung = 236 => "Samsung",
        /// Xerox (253)
        Xerox = 253 => "Xerox",
        /// Fuji Xerox / FUJIFILM Business Innovation (297)
        FujiXerox = 297 => "FUJIFILM",
        /// Ricoh (367)
        Ricoh = 367 => "Ricoh",
        /// Lexmark (641)
        Lexmark = 641 => "Lexmark",
        /// Toshiba TEC (1129)
        Toshiba = 1129 => "Toshiba",
        /// Seiko Epson (1248)
        Epson = 1248 => "Epson",
        /// Kyocera (1347)
        Kyocera = 1347 => "Kyocera",
        /// Canon (1602)
        Canon = 1602 => "Canon",
        /// Oki Data (2001)
        Oki = 2001 => "OKI",
        /// Sharp (2385)
        Sharp = 2385 => "Sharp",
        /// Brother (2435)
        Brother = 2435 => "Brother",
        /// Konica Minolta (18334)
        KonicaMinolta = 18334 => "Konica Minolta",
        /// Grandstream Networks (42397)
        Grandstream = 42397 => "Grandstream",
        /// 2N Telekomunikace (6530)
        TwoN = 6530 => "2N",
        /// innovaphone (6666)
        Innovaphone = 6666 => "innovaphone",
        /// Ascom (27614)
        Ascom = 27614 => "Ascom",
        /// Allworx (38516)
        Allworx = 38516 => "Allworx",
        /// Zyxel (890)
        Zyxel = 890 => "Zyxel",
        /// Linksys / Cisco small business switches (3955)
        Linksys = 3955 => "Linksys",
        /// TP-Link (11863)
        TpLink = 11863 => "TP-Link",
        /// Fortinet (12356)
        Fortinet = 12356 => "Fortinet",
        /// Aruba Networks (14823)
        Aruba = 14823 => "Aruba",
        /// MikroTik (14988)
        MikroTik = 14988 => "MikroTik",
        /// Juniper Networks (2636)
        Juniper = 2636 => "Juniper",
        /// Netgear (4526)
        Netgear = 4526 => "Netgear",
        /// Dell (674)
        Dell = 674 => "Dell",
        /// Extreme Networks (1916)
        Extreme = 1916 => "Extreme",
        /// LANCOM Systems (2356)
        Lancom = 2356 => "LANCOM",
        /// Huawei (2011)
        Huawei = 2011 => "Huawei",
    }
}
