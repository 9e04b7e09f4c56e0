//! SNMP enumerations as Rust enums that can still carry values nobody has seen.
//!
//! A printer can always report a code that is not in the MIB we read. [`code_enum!`] turns a MIB
//! enumeration into an enum whose first variant, `Unrecognised(i32)`, keeps any other value, so a
//! reading never loses the raw code and mapping never fails on it. (The same idea as smoltcp's
//! `enum_with_unknown!`.)
//!
//! Wire rule: `Unrecognised` is variant 0 and the known values follow in declaration order.
//! Enums are append-only: a new known value goes at the end, and since that changes how an older
//! reader sees the new code (it cannot decode the variant index), it needs a new format version.

/// Defines an SNMP code enum: `Unrecognised(i32)` first, then the named values, with
/// `from_raw`, `raw` and `name`.
#[macro_export]
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            /// A value this build does not know; the raw code is kept.
            Unrecognised(i32),
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Maps a raw SNMP integer to the enum, keeping unknown codes in `Unrecognised`.
            pub const fn from_raw(raw: i32) -> Self {
                match raw {
                    $( $value => Self::$variant, )+
                    other => Self::Unrecognised(other),
                }
            }

            /// The raw SNMP integer, exactly as the device sent it.
            pub const fn raw(self) -> i32 {
                match self {
                    Self::Unrecognised(raw) => raw,
                    $( Self::$variant => $value, )+
                }
            }

            /// The MIB's name for the value (`"unrecognised"` for unknown codes).
            pub const fn name(self) -> &'static str {
                match self {
                    Self::Unrecognised(_) => "unrecognised",
                    $( Self::$variant => $text, )+
                }
            }
        }
    };
}
