//! A string that must never be printed: BMC and node passwords, and the one
//! way text that may hold one is masked ([`Secret::redact`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// What a secret prints as, and what replaces it in redacted text.
pub const MASK: &str = "********";

/// A password from the lab config. `Debug`, `Display` and `Serialize` print
/// `********`; the only way to the text is [`Secret::expose`], so a secret
/// cannot reach a log line or an API answer by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `s` (what a lab config's password reads as).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The password itself, for the one place that hands it to a peer
    /// (an environment variable, a 0600 file).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret is the empty string: no password set (the lab config's
    /// default for `ipmi_pass` and `target_node_password`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of the secret replaced by [`MASK`]
    /// (borrowed when there is none, or the secret is empty).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        redact(text, &self.0)
    }
}

/// [`Secret::redact`] for a password held as a plain `&str` (what is handed
/// to a peer after [`Secret::expose`]).
pub fn redact<'a>(text: &'a str, secret: &str) -> Cow<'a, str> {
    if secret.is_empty() || !text.contains(secret) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.replace(secret, MASK))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "******** ********");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"********\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn redact_masks_every_occurrence() {
        let s = Secret::new("hunter2");
        assert_eq!(
            s.redact("pw=hunter2 again hunter2."),
            "pw=******** again ********."
        );
        assert!(matches!(s.redact("nothing"), Cow::Borrowed("nothing")));
        assert!(matches!(Secret::default().redact("x"), Cow::Borrowed("x")));
        assert_eq!(redact("a s3cr3t b", "s3cr3t"), "a ******** b");
        assert_eq!(redact("nothing", ""), "nothing");
    }
}
