//! Locations: where a check runs from, how its slots are spread over them,
//! and how many must fail to open an incident.

use serde::{Deserialize, Serialize};

/// The location a worker serves when `LOCATION` is not set, and the one a
/// check runs in when it names none.
pub const DEFAULT_LOCATION: &str = "default";
/// Most locations one check may run in.
pub const MAX_LOCATIONS: usize = 32;
/// Longest location name.
pub const MAX_LOCATION_LEN: usize = 64;

/// Whether `name` can name a location: 1 to 64 of `a-z`, `0-9`, `-`, `_`,
/// `.` (it is part of Redis keys and metric labels).
pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_LOCATION_LEN {
        return Err(format!(
            "a location name is 1 to {MAX_LOCATION_LEN} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "{name:?} is not a location name: use a-z, 0-9, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// How a check's slots are spread over its locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationStrategy {
    /// Every slot runs in every location.
    #[default]
    All,
    /// Each slot runs in one location, in turn.
    RoundRobin,
}

impl LocationStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            LocationStrategy::All => "all",
            LocationStrategy::RoundRobin => "round_robin",
        }
    }

    pub fn parse(s: &str) -> Option<LocationStrategy> {
        match s {
            "all" => Some(LocationStrategy::All),
            "round_robin" => Some(LocationStrategy::RoundRobin),
            _ => None,
        }
    }
}

/// How many locations must be failing to open an incident
/// (`alert_locations`): a number, or `any`, `majority`, `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quorum {
    /// One failing location is enough.
    #[default]
    Any,
    /// More than half of the check's live locations.
    Majority,
    /// Every live location.
    All,
    /// At least this many (capped at the live locations).
    AtLeast(u16),
}

impl Quorum {
    /// How many failing locations open an incident when `live` of the
    /// check's locations have a worker. 0 when none is live: no incident
    /// opens or holds without a live location.
    pub fn needed(self, live: usize) -> usize {
        if live == 0 {
            return 0;
        }
        match self {
            Quorum::Any => 1,
            Quorum::Majority => live / 2 + 1,
            Quorum::All => live,
            Quorum::AtLeast(n) => usize::from(n).clamp(1, live),
        }
    }

    /// Whether `failing` of `live` live locations make a quorum.
    pub fn met(self, failing: usize, live: usize) -> bool {
        live > 0 && failing >= self.needed(live)
    }

    /// As stored: `any`, `majority`, `all` or the number.
    pub fn encode(self) -> String {
        match self {
            Quorum::Any => "any".into(),
            Quorum::Majority => "majority".into(),
            Quorum::All => "all".into(),
            Quorum::AtLeast(n) => n.to_string(),
        }
    }

    pub fn decode(s: &str) -> Option<Quorum> {
        match s {
            "any" => Some(Quorum::Any),
            "majority" => Some(Quorum::Majority),
            "all" => Some(Quorum::All),
            n => n.parse().ok().filter(|&n| n >= 1).map(Quorum::AtLeast),
        }
    }
}

impl Serialize for Quorum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Quorum::AtLeast(n) => s.serialize_u16(*n),
            other => s.serialize_str(&other.encode()),
        }
    }
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Quorum, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Quorum::decode(&s)
                .filter(|q| !matches!(q, Quorum::AtLeast(_)))
                .ok_or_else(|| serde::de::Error::custom("must be any, majority, all or a number")),
            serde_json::Value::Number(n) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n >= 1)
                .map(Quorum::AtLeast)
                .ok_or_else(|| serde::de::Error::custom("must be a number from 1")),
            _ => Err(serde::de::Error::custom(
                "must be any, majority, all or a number",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorums_count_live_locations_only() {
        assert!(Quorum::Any.met(1, 3));
        assert!(!Quorum::Majority.met(1, 3));
        assert!(Quorum::Majority.met(2, 3));
        assert!(!Quorum::All.met(2, 3));
        assert!(Quorum::All.met(3, 3));
        // A stale location leaves the count: two live, both failing.
        assert!(Quorum::All.met(2, 2));
        assert!(Quorum::Majority.met(2, 2));
        assert!(!Quorum::Majority.met(1, 2));
        // A number above the live locations asks for all of them.
        assert!(Quorum::AtLeast(3).met(2, 2));
        assert!(!Quorum::AtLeast(2).met(1, 3));
        // Nothing live: nothing opens or holds an incident.
        assert!(!Quorum::Any.met(0, 0));
        assert!(!Quorum::All.met(1, 0));
    }

    #[test]
    fn quorum_json_is_a_word_or_a_number() {
        let q: Quorum = serde_json::from_str("\"majority\"").unwrap();
        assert_eq!(q, Quorum::Majority);
        let q: Quorum = serde_json::from_str("2").unwrap();
        assert_eq!(q, Quorum::AtLeast(2));
        assert_eq!(serde_json::to_string(&q).unwrap(), "2");
        assert_eq!(serde_json::to_string(&Quorum::All).unwrap(), "\"all\"");
        for bad in ["0", "\"2\"", "\"most\"", "-1", "1.5", "true"] {
            assert!(serde_json::from_str::<Quorum>(bad).is_err(), "{bad}");
        }
        for q in [
            Quorum::Any,
            Quorum::Majority,
            Quorum::All,
            Quorum::AtLeast(7),
        ] {
            assert_eq!(Quorum::decode(&q.encode()), Some(q));
        }
    }

    #[test]
    fn location_names_are_plain() {
        assert!(valid_name("eu-west-1").is_ok());
        assert!(valid_name("default").is_ok());
        for bad in ["", "EU", "a b", "a:b", "x{y}", &"a".repeat(65)] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }
}
