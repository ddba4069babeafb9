//! Room names: parsed once at the edge into a type that can only hold a
//! valid name.

use core::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest room name, in bytes.
pub const MAX_ROOM_NAME: usize = 64;

/// A room name: 1..=64 characters from `a-z A-Z 0-9 - _ .`, not starting
/// with `.`. Visible to the relay (it routes by it), so it should not be
/// secret. The restricted alphabet keeps names safe to print, to use in
/// file names and to type.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

/// Why a string is not a room name.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "invalid room name: use 1 to {MAX_ROOM_NAME} letters, digits, '-', '_' or '.', not starting with '.'"
)]
pub struct BadRoomName;

impl RoomName {
    /// Parses a room name.
    ///
    /// # Errors
    /// [`BadRoomName`] for anything outside the allowed form.
    pub fn new(name: &str) -> Result<Self, BadRoomName> {
        let ok = !name.is_empty()
            && name.len() <= MAX_ROOM_NAME
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(BadRoomName)
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomName {
    type Error = BadRoomName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<RoomName> for String {
    fn from(r: RoomName) -> Self {
        r.0
    }
}

impl core::str::FromStr for RoomName {
    type Err = BadRoomName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names_and_refuses_the_rest() {
        for ok in ["lobby", "team-2", "a", "x.y_z", &"a".repeat(64)] {
            assert!(RoomName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "with space",
            "é",
            "a/b",
            "\u{1b}[2J",
            &"a".repeat(65),
        ] {
            assert!(RoomName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserialising_validates() {
        let bytes = postcard::to_allocvec(&"bad name".to_owned()).unwrap_or_default();
        assert!(postcard::from_bytes::<RoomName>(&bytes).is_err());
        let bytes = postcard::to_allocvec(&"good".to_owned()).unwrap_or_default();
        assert_eq!(
            postcard::from_bytes::<RoomName>(&bytes).ok(),
            RoomName::new("good").ok()
        );
    }
}
