//! [`MacAddr`]: a NIC's MAC address, parsed once when the lab is read.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A MAC address. Read from `aa:bb:cc:dd:ee:ff` in either case, `-`
/// separators accepted too; shown (and written to every generated file)
/// lower-case with colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// Why a text is not a [`MacAddr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (expected aa:bb:cc:dd:ee:ff)")]
pub struct MacParseError;

impl MacAddr {
    /// Lower-case with dashes: `aa-bb-cc-dd-ee-ff`.
    pub fn dashed(&self) -> String {
        self.with_separator('-')
    }

    /// The per-MAC boot file name pxelinux, GRUB and iPXE look for:
    /// `01-aa-bb-cc-dd-ee-ff` (ARP hardware type 1, Ethernet).
    pub fn pxe_name(&self) -> String {
        format!("01-{}", self.dashed())
    }

    fn with_separator(&self, sep: char) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(17);
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(sep);
            }
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Six two-digit hex octets separated by `:` or `-`, nothing around.
    fn from_str(s: &str) -> Result<Self, MacParseError> {
        let b = s.as_bytes();
        if b.len() != 17 {
            return Err(MacParseError);
        }
        let mut octets = [0u8; 6];
        for (i, octet) in octets.iter_mut().enumerate() {
            let at = 3 * i;
            if i > 0 && !matches!(b[at - 1], b':' | b'-') {
                return Err(MacParseError);
            }
            let digit = |c: u8| char::from(c).to_digit(16).ok_or(MacParseError);
            *octet = (digit(b[at])? * 16 + digit(b[at + 1])?) as u8;
        }
        Ok(MacAddr(octets))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_separator(':'))
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// Equal to the text it parses from (`"AA-BB-..."` too).
impl PartialEq<&str> for MacAddr {
    fn eq(&self, other: &&str) -> bool {
        other.parse() == Ok(*self)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MacAddr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a MAC address (aa:bb:cc:dd:ee:ff)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<MacAddr, E> {
                s.parse()
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_either_case_and_separator_and_shows_one_form() {
        let mac: MacAddr = "AA-bb:0C-dd:EE-f0".parse().unwrap();
        assert_eq!(mac.0, [0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0xf0]);
        assert_eq!(mac.to_string(), "aa:bb:0c:dd:ee:f0");
        assert_eq!(mac.dashed(), "aa-bb-0c-dd-ee-f0");
        assert_eq!(mac.pxe_name(), "01-aa-bb-0c-dd-ee-f0");
        assert_eq!(mac, "aa:bb:0c:dd:ee:f0");
        assert_eq!(serde_json::to_value(mac).unwrap(), "aa:bb:0c:dd:ee:f0");
        let back: MacAddr = serde_json::from_str("\"aa:bb:0c:dd:ee:f0\"").unwrap();
        assert_eq!(back, mac);
    }

    #[test]
    fn refuses_what_is_not_six_octets() {
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "zz:bb:cc:dd:ee:ff",
            "aa.bb.cc.dd.ee.ff",
            " aa:bb:cc:dd:ee:f",
            "aa:bb:cc:dd:ee:+f",
            "aabbccddeeff00000",
            "aa:bb:cc:dd:ee:fé",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(MacParseError), "{bad:?}");
        }
    }
}
