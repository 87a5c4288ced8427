//! Which OS an image is: the `ID` and `VERSION_ID` of its os-release and
//! kiwi's image id (`<image id="...">` of the kiwi description, which kiwi
//! writes into the image as `/etc/ImageID`). add-image records it in the
//! manifest ([`crate::Manifest::os`]); after a provision the node's own
//! os-release and `/etc/ImageID` are read and compared with it, so a node
//! that fell back to the OS already on its disk is not reported done.
//!
//! ```
//! use pelagos_pxe::os_release::{OsIdentity, parse_os_release};
//! let text = "# comment\nNAME=\"openSUSE Leap\"\nID=opensuse-leap\nVERSION_ID='15.6'\n";
//! assert_eq!(parse_os_release(text).get("NAME").map(String::as_str), Some("openSUSE Leap"));
//! let os = OsIdentity::from_os_release(text, "leap-jeos-1\n");
//! assert_eq!(os.to_string(), "ID=opensuse-leap VERSION_ID=15.6 image=leap-jeos-1");
//! os.check().unwrap();
//! ```

use crate::error::PxeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Longest value of an identity field, in bytes.
pub const MAX_FIELD_LEN: usize = 256;

/// `/etc/ImageID`: kiwi's `<image id="...">`.
pub const IMAGE_ID_FILE: &str = "etc/ImageID";
/// Where os-release is looked for inside an image root, in order.
pub const OS_RELEASE_FILES: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// The identity of an OS: what a booted node must report to be running
/// the image that was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsIdentity {
    /// os-release `ID` (`linux` when the file names none, as os-release(5) says).
    pub id: String,
    /// os-release `VERSION_ID`; empty when the file names none.
    #[serde(default)]
    pub version_id: String,
    /// kiwi's image id (`/etc/ImageID`); empty when unknown.
    #[serde(default)]
    pub image_id: String,
}

impl OsIdentity {
    /// From the text of an os-release file and of `/etc/ImageID` (trimmed).
    /// An os-release without a single `KEY=value` gives an empty `id`: no
    /// os-release at all, which matches no image.
    pub fn from_os_release(os_release: &str, image_id: &str) -> Self {
        let fields = parse_os_release(os_release);
        let id = match fields.get("ID") {
            Some(id) => id.clone(),
            None if fields.is_empty() => String::new(),
            None => "linux".to_owned(),
        };
        OsIdentity {
            id,
            version_id: fields.get("VERSION_ID").cloned().unwrap_or_default(),
            image_id: image_id.trim().to_owned(),
        }
    }

    /// Refuse a field with a control character or longer than
    /// [`MAX_FIELD_LEN`], and an empty `id`; the error names the field and
    /// (escaped, cut) the value.
    pub fn check(&self) -> Result<(), PxeError> {
        let bad = |field: &'static str, value: &str, reason: &'static str| {
            Err(PxeError::OsIdentity {
                field,
                value: shown(value),
                reason,
            })
        };
        if self.id.is_empty() {
            return bad("ID", &self.id, "empty (no os-release)");
        }
        for (field, value) in [
            ("ID", &self.id),
            ("VERSION_ID", &self.version_id),
            ("image id", &self.image_id),
        ] {
            if value.len() > MAX_FIELD_LEN {
                return bad(field, value, "longer than 256 bytes");
            }
            if value.chars().any(char::is_control) {
                return bad(field, value, "contains a control character");
            }
        }
        Ok(())
    }

    /// Whether a node reporting `found` runs this image: same `ID` and
    /// `VERSION_ID`, and the same image id when this one records one.
    pub fn matched_by(&self, found: &OsIdentity) -> bool {
        self.id == found.id
            && self.version_id == found.version_id
            && (self.image_id.is_empty() || self.image_id == found.image_id)
    }
}

/// `ID=<id> VERSION_ID=<version> image=<image id>`, `-` for an empty field,
/// each value escaped and cut (a node may report anything).
impl fmt::Display for OsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_dash = |v: &str| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                shown(v)
            }
        };
        write!(
            f,
            "ID={} VERSION_ID={} image={}",
            or_dash(&self.id),
            or_dash(&self.version_id),
            or_dash(&self.image_id)
        )
    }
}

/// A value fit for a message: escaped (`\n`, `\u{1b}`), at most 64
/// characters of it.
fn shown(v: &str) -> String {
    let mut out: String = v.chars().take(64).flat_map(char::escape_debug).collect();
    if v.chars().nth(64).is_some() {
        out.push_str("...");
    }
    out
}

/// The `KEY=value` assignments of an os-release file (os-release(5)): one
/// per line, `#` comment lines and blank lines skipped, values unquoted the
/// shell's way (`"..."` with `\"`, `\\`, `\$`, `` \` `` escapes, `'...'`
/// literal, a bare value with `\` escapes; parts may be concatenated).
/// Lines that are no assignment are skipped; a later key wins.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key_ok = !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if !key_ok {
            continue;
        }
        if let Some(v) = unquote(value) {
            out.insert(key.to_owned(), v);
        }
    }
    out
}

/// One shell word; `None` when a quote is not closed.
fn unquote(value: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    c => out.push(c),
                }
            },
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        c @ ('"' | '\\' | '$' | '`') => out.push(c),
                        c => {
                            out.push('\\');
                            out.push(c);
                        }
                    },
                    c => out.push(c),
                }
            },
            '\\' => {
                if let Some(c) = chars.next() {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_and_comments() {
        let text = r#"
# a comment line
NAME="Debian GNU/Linux"
ID=debian
VERSION_ID="12"
PRETTY_NAME='It'"'"'s "quoted"'
ESCAPED="a \"b\" \\ \$HOME \` c\d"
BARE=a\ b
  INDENTED=yes
not an assignment
1BAD=x
BAD-KEY=x
UNCLOSED="oops
EMPTY=
ID_LIKE="suse opensuse"
"#;
        let f = parse_os_release(text);
        let get = |k: &str| f.get(k).map(String::as_str);
        assert_eq!(get("NAME"), Some("Debian GNU/Linux"));
        assert_eq!(get("ID"), Some("debian"));
        assert_eq!(get("VERSION_ID"), Some("12"));
        assert_eq!(get("PRETTY_NAME"), Some(r#"It's "quoted""#));
        assert_eq!(get("ESCAPED"), Some(r#"a "b" \ $HOME ` c\d"#));
        assert_eq!(get("BARE"), Some("a b"));
        assert_eq!(get("INDENTED"), Some("yes"));
        assert_eq!(get("EMPTY"), Some(""));
        assert_eq!(get("ID_LIKE"), Some("suse opensuse"));
        for absent in ["1BAD", "BAD-KEY", "UNCLOSED", "not an assignment"] {
            assert_eq!(get(absent), None, "{absent}");
        }
    }

    #[test]
    fn a_later_key_wins_and_crlf_is_trimmed() {
        let f = parse_os_release("ID=one\r\nID=\"two\"\r\n");
        assert_eq!(f["ID"], "two");
    }

    #[test]
    fn identity_defaults() {
        let os = OsIdentity::from_os_release("NAME=Arch\n", " arch-1 \n");
        assert_eq!(
            (os.id.as_str(), os.version_id.as_str(), os.image_id.as_str()),
            ("linux", "", "arch-1")
        );
        // No os-release at all: nothing to match.
        let none = OsIdentity::from_os_release("", "");
        assert_eq!(none.id, "");
        assert_eq!(none.to_string(), "ID=- VERSION_ID=- image=-");
        assert!(none.check().is_err());
    }

    #[test]
    fn matching_needs_id_version_and_a_recorded_image_id() {
        let want = OsIdentity {
            id: "alpha".into(),
            version_id: "1.0".into(),
            image_id: "e2e-alpha-1".into(),
        };
        assert!(want.matched_by(&want));
        let mut other = want.clone();
        other.image_id = "e2e-alpha-2".into();
        assert!(!want.matched_by(&other));
        other.image_id.clear();
        assert!(!want.matched_by(&other));
        let mut no_image = want.clone();
        no_image.image_id.clear();
        // Without a recorded image id, any image id of the same OS passes.
        assert!(no_image.matched_by(&want));
        for (id, version) in [("debian", "1.0"), ("alpha", "1.1"), ("alpha", "")] {
            let found = OsIdentity {
                id: id.into(),
                version_id: version.into(),
                image_id: "e2e-alpha-1".into(),
            };
            assert!(!want.matched_by(&found), "{found}");
        }
    }

    #[test]
    fn bad_values_are_refused_naming_field_and_value() {
        let mut os = OsIdentity {
            id: "alpha".into(),
            version_id: "1.0\n2".into(),
            image_id: String::new(),
        };
        let e = os.check().unwrap_err().to_string();
        assert!(e.contains("VERSION_ID") && e.contains(r"1.0\n2"), "{e}");
        os.version_id = "1.0".into();
        os.image_id = "x".repeat(300);
        let e = os.check().unwrap_err().to_string();
        assert!(e.contains("image id") && e.contains("256"), "{e}");
        assert!(e.len() < 200, "the whole value is not printed: {e}");
        os.image_id = "e\u{1b}[31m".into();
        let e = os.check().unwrap_err().to_string();
        assert!(e.contains(r"e\u{1b}[31m"), "{e}");
        os.image_id = "ok-1".into();
        os.check().unwrap();
    }

    #[test]
    fn display_escapes_what_a_node_reports() {
        let os = OsIdentity {
            id: "evil\nID=alpha".into(),
            version_id: "1".into(),
            image_id: String::new(),
        };
        assert_eq!(os.to_string(), r"ID=evil\nID=alpha VERSION_ID=1 image=-");
    }

    #[test]
    fn manifests_without_image_id_load() {
        let os: OsIdentity = serde_json::from_str(r#"{"id": "sles"}"#).unwrap();
        assert_eq!(os.version_id, "");
        assert_eq!(os.image_id, "");
    }
}
