//! Validated identifiers: a value of these types is known to be well formed.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest user id we accept, in characters: what the seed accepts.
pub const USER_ID_MAX_LEN: usize = 255;

/// A buyer's id: 1 to 255 characters, not blank, no control characters.
///
/// Any script and any identity provider's subject (`auth0|5f7c…`, a UUID,
/// an e-mail address) is a user id. Redis keys and hash fields are binary
/// safe and a sale's keys take their hash tag from `{sale:ID}`, which comes
/// first, so nothing in a user id can move a key to another slot; control
/// characters are refused because they would break log lines and
/// PostgreSQL cannot store NUL. The cases both this type and the
/// storefront check are `user-ids.json`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct UserId(String);

/// Why a user id was refused; `Display` is the message the api shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("userId should not be empty")]
    Empty,
    #[error("userId must be shorter than or equal to {USER_ID_MAX_LEN} characters")]
    TooLong,
    #[error("userId must not contain control characters")]
    ControlCharacter,
}

impl UserId {
    /// Parses a user id, refusing blank, over-long ones and control characters.
    pub fn parse(raw: &str) -> Result<Self, UserIdError> {
        // The usual id: printable ASCII without spaces, so neither blank nor
        // holding a control character, and one character a byte.
        if (1..=USER_ID_MAX_LEN).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Ok(Self(raw.to_owned()));
        }
        if raw.trim().is_empty() {
            return Err(UserIdError::Empty);
        }
        if raw.chars().count() > USER_ID_MAX_LEN {
            return Err(UserIdError::TooLong);
        }
        if raw.chars().any(char::is_control) {
            return Err(UserIdError::ControlCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = UserIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserId> for String {
    fn from(value: UserId) -> Self {
        value.0
    }
}

/// Written as the string it is, borrowed: `into = "String"` cloned the id
/// for every one serialized (each order of every job).
impl Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sale's id: 1 to 64 characters, ASCII letters, digits, `-` and `_`.
///
/// It is part of every Redis key of the sale (inside a hash tag), so it must
/// not contain `{`, `}` or `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct SaleId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a sale id is 1 to 64 characters of letters, digits, '-' and '_'")]
pub struct SaleIdError;

impl SaleId {
    pub fn parse(raw: &str) -> Result<Self, SaleIdError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if raw.is_empty() || raw.len() > 64 || !raw.chars().all(allowed) {
            return Err(SaleIdError);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SaleId {
    type Error = SaleIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SaleId> for String {
    fn from(value: SaleId) -> Self {
        value.0
    }
}

/// Written as the string it is, borrowed: `into = "String"` cloned the id
/// for every one serialized (each order of every job).
impl Serialize for SaleId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl fmt::Display for SaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An order's id, minted by the api before the purchase script runs.
///
/// UUID v7: time ordered, so the orders primary key index grows at its end
/// instead of splitting pages all over the tree during a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(raw).map(Self)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The id as text, hyphenated and lowercase (what `Display` and serde
    /// write), into `buf`: no formatting machinery, no allocation.
    pub fn encode<'b>(&self, buf: &'b mut [u8; 36]) -> &'b str {
        self.0.hyphenated().encode_lower(buf)
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for OrderId {
    fn from(value: Uuid) -> Self {
        Self(value)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_order_id_encodes_as_it_displays_and_serializes() {
        let order = OrderId::new();
        let mut buf = [0; 36];
        let encoded = order.encode(&mut buf).to_owned();
        assert_eq!(encoded, order.to_string());
        assert_eq!(
            serde_json::to_value(order).ok(),
            Some(serde_json::Value::String(encoded))
        );
    }

    use super::*;

    /// A case of `user-ids.json`: a string, or `{repeat, times}`.
    fn case(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::String(s) => s.clone(),
            other => other["repeat"]
                .as_str()
                .expect("repeat")
                .repeat(other["times"].as_u64().expect("times") as usize),
        }
    }

    #[test]
    fn user_ids_follow_the_shared_cases() {
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("../user-ids.json")).expect("user-ids.json");
        assert_eq!(cases["maxLength"], USER_ID_MAX_LEN);
        for ok in cases["accepted"].as_array().expect("accepted") {
            let raw = case(ok);
            assert_eq!(
                UserId::parse(&raw).map(String::from),
                Ok(raw.clone()),
                "{raw:?}"
            );
        }
        for refused in cases["refused"].as_array().expect("refused") {
            let raw = case(&refused["userId"]);
            let error = UserId::parse(&raw).expect_err(&raw);
            assert_eq!(error.to_string(), refused["message"], "{raw:?}");
        }
    }

    #[test]
    fn user_id_deserialization_validates() {
        assert!(serde_json::from_str::<UserId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
    }

    #[test]
    fn sale_id_refuses_hash_tag_characters() {
        assert!(SaleId::parse("black-friday_2026").is_ok());
        for bad in ["", "a:b", "{x}", "a b", &"s".repeat(65)] {
            assert_eq!(SaleId::parse(bad), Err(SaleIdError), "{bad}");
        }
    }

    #[test]
    fn order_ids_are_unique_and_round_trip() {
        let a = OrderId::new();
        let b = OrderId::new();
        assert_ne!(a, b);
        assert_eq!(OrderId::parse(&a.to_string()), Ok(a));
    }
}
