//! Questions of a log by time and seq: when "10m" (ago) is, and which entries a filtered
//! listing shows, window by window, as a reader or a follower reads them.
//!
//! It owns that arithmetic and reads nothing; it must not print, know flag names, or write
//! the log.

use crate::log::Filter;
use crate::process::parse_duration;
use chrono::{DateTime, Utc};

/// Parses an RFC 3339 time (`2025-03-14T03:12:00Z`), a date (`2025-03-14`, midnight UTC), `now`,
/// or a duration meaning that long ago (`10m`, `2h`).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(Utc::now());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) && s.ends_with(|c: char| c.is_ascii_alphabetic())
    {
        let ago = parse_duration(s)?;
        let ago = chrono::Duration::from_std(ago).map_err(|_| format!("{s:?} is too long ago"))?;
        return Utc::now()
            .checked_sub_signed(ago)
            .ok_or_else(|| format!("{s:?} is too long ago"));
    }
    Err(format!(
        "{s:?} is not a time: write RFC 3339 (2025-03-14T03:12:00Z), a date (2025-03-14), or a \
         duration meaning that long ago (90s, 10m, 2h)"
    ))
}

/// A filtered listing of a log, limited to a seq range, read one window of seqs at a time
/// (the whole log at once, or what a follower finds appended since it last looked).
#[derive(Clone, Debug)]
pub struct Listing {
    /// Which entries (its seq bounds are replaced by each window's).
    pub filter: Filter,
    /// The first seq shown (inclusive).
    pub from_seq: Option<u64>,
    /// The last seq shown (inclusive).
    pub to_seq: Option<u64>,
}

impl Listing {
    /// The filter for the entries with seq in `from..=to` and in the listing's range; `None`
    /// when the two do not meet.
    pub fn window(&self, from: u64, to: u64) -> Option<Filter> {
        let from = from.max(self.from_seq.unwrap_or(1));
        let to = to.min(self.to_seq.unwrap_or(u64::MAX));
        if from > to {
            return None;
        }
        let mut window = self.filter.clone();
        window.from_seq = Some(from);
        window.to_seq = Some(to);
        Some(window)
    }

    /// Whether a log ending at seq `head` already holds every entry the listing can show.
    pub fn complete_at(&self, head: u64) -> bool {
        self.to_seq.is_some_and(|to| head >= to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stay_within_the_listing_range() {
        let listing = Listing {
            filter: Filter::new(),
            from_seq: Some(5),
            to_seq: Some(10),
        };
        let w = listing.window(1, 20).expect("overlaps");
        assert_eq!((w.from_seq, w.to_seq), (Some(5), Some(10)));
        let w = listing.window(7, 8).expect("inside");
        assert_eq!((w.from_seq, w.to_seq), (Some(7), Some(8)));
        assert!(listing.window(11, 20).is_none());
        assert!(!listing.complete_at(9));
        assert!(listing.complete_at(10));
        let open = Listing {
            filter: Filter::new(),
            from_seq: None,
            to_seq: None,
        };
        let w = open.window(1, 3).expect("all");
        assert_eq!((w.from_seq, w.to_seq), (Some(1), Some(3)));
        assert!(!open.complete_at(u64::MAX));
    }
}
