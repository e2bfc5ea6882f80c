//! One time format for every answer and payload: RFC 3339 in UTC with a
//! `Z` and milliseconds (`2026-11-28T17:53:30.123Z`). Used as
//! `#[serde(serialize_with = "pulse_core::time::ms")]`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Formats a time the one way Pulse shows times.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn ms<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

pub fn ms_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format(t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_milliseconds_and_a_z() {
        let t = DateTime::from_timestamp_nanos(1_764_352_410_123_456_789);
        assert_eq!(format(&t), "2025-11-28T17:53:30.123Z");
        let whole = DateTime::from_timestamp(1_764_352_410, 0).unwrap();
        assert_eq!(format(&whole), "2025-11-28T17:53:30.000Z");
    }
}
