//! Key intervals and their unions, exactly as etcd's auth store compares them
//! (`server/auth/range_perm_cache.go` and `pkg/adt`'s interval tree).
//!
//! A permission or a request is the half-open interval `[key, range_end)`: an empty
//! `range_end` is the single key, i.e. `[key, key + "\0")`; `range_end = "\0"` has no upper
//! bound (every key `>= key`); a prefix is `[key, prefix_end(key))`. etcd allows a request on
//! `[K, E)` only when the union of the user's intervals for that access (merged across all its
//! roles, touching intervals joined) contains the whole of `[K, E)`.

use crate::policy::prefix_end;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

/// The exclusive end of a key interval. `Key < Unbounded` (declaration order), as in etcd,
/// where the empty end is the largest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    Key(Vec<u8>),
    Unbounded,
}

impl End {
    /// True when `key` lies below this end.
    fn above(&self, key: &[u8]) -> bool {
        match self {
            Self::Key(end) => key < end.as_slice(),
            Self::Unbounded => true,
        }
    }
}

/// A half-open key interval `[begin, end)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyInterval {
    pub begin: Vec<u8>,
    pub end: End,
}

/// How an interval would be written as one etcd permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One key (`range_end` empty).
    Key,
    /// `[key, prefix_end(key))`.
    Prefix,
    /// Every key from `key` on (`range_end` = `"\0"`).
    FromKey,
    /// Any other `[key, range_end)`.
    Range,
}

impl KeyInterval {
    /// The single key `key`: `[key, key + "\0")`.
    pub fn point(key: &[u8]) -> Self {
        let mut end = key.to_vec();
        end.push(0);
        Self {
            begin: key.to_vec(),
            end: End::Key(end),
        }
    }

    /// Every key starting with `key` (unbounded when `key` is all 0xff, as etcd's
    /// `GetPrefixRangeEnd`).
    pub fn prefix(key: &[u8]) -> Self {
        Self {
            begin: key.to_vec(),
            end: prefix_end(key).map_or(End::Unbounded, End::Key),
        }
    }

    /// An etcd `(key, range_end)` pair, of a permission or of a request.
    pub fn from_etcd(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => Self::point(key),
            [0] => Self {
                begin: key.to_vec(),
                end: End::Unbounded,
            },
            end => Self {
                begin: key.to_vec(),
                end: End::Key(end.to_vec()),
            },
        }
    }

    /// The `range_end` etcd would store for this interval.
    pub fn etcd_range_end(&self) -> Vec<u8> {
        match (&self.end, self.kind()) {
            (_, Kind::Key) => Vec::new(),
            (End::Unbounded, _) => vec![0],
            (End::Key(end), _) => end.clone(),
        }
    }

    pub fn kind(&self) -> Kind {
        if self.end == Self::point(&self.begin).end {
            Kind::Key
        } else if prefix_end(&self.begin).is_some_and(|end| self.end == End::Key(end)) {
            Kind::Prefix
        } else if self.end == End::Unbounded {
            Kind::FromKey
        } else {
            Kind::Range
        }
    }

    /// True when no key lies in the interval.
    pub fn is_empty(&self) -> bool {
        !self.end.above(&self.begin)
    }

    /// True when the two intervals share a key.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.end.above(&other.begin) && other.end.above(&self.begin)
    }

    /// True when every key of `other` lies in `self` (an empty `other` included).
    pub fn contains(&self, other: &Self) -> bool {
        other.is_empty() || (self.begin <= other.begin && self.end >= other.end)
    }

    /// The keys in both, `None` when there are none.
    pub fn intersection(&self, other: &Self) -> Option<Self> {
        let cut = Self {
            begin: self.begin.clone().max(other.begin.clone()),
            end: self.end.clone().min(other.end.clone()),
        };
        (!cut.is_empty()).then_some(cut)
    }
}

/// Shows a key as text: as is when it is printable UTF-8, with escapes otherwise.
pub fn show_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => key.escape_ascii().to_string(),
    }
}

impl fmt::Display for KeyInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let begin = show_key(&self.begin);
        match (self.kind(), &self.end) {
            (Kind::Key, _) => write!(f, "key {begin}"),
            (Kind::Prefix, _) => write!(f, "prefix {begin}"),
            (Kind::FromKey, _) | (_, End::Unbounded) => write!(f, "from-key {begin}"),
            (Kind::Range, End::Key(end)) => write!(f, "range [{begin}, {})", show_key(end)),
        }
    }
}

/// `{"key", "range_end", "kind"}`: `range_end` as etcd stores it (`""` for one key, `"\u0000"`
/// for no upper bound); keys that are not UTF-8 are shown lossily.
impl Serialize for KeyInterval {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("KeyInterval", 3)?;
        s.serialize_field("key", &String::from_utf8_lossy(&self.begin))?;
        s.serialize_field(
            "range_end",
            &String::from_utf8_lossy(&self.etcd_range_end()),
        )?;
        s.serialize_field("kind", &self.kind())?;
        s.end()
    }
}

/// One interval of a merged union, with the labels (role names) of the pieces it was made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Merged {
    #[serde(flatten)]
    pub interval: KeyInterval,
    #[serde(rename = "roles")]
    pub sources: BTreeSet<String>,
}

/// A union of labelled intervals, merged into sorted, disjoint, non-touching intervals: the
/// shape etcd's `Contains` check effectively sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    merged: Vec<Merged>,
}

impl RangeSet {
    /// Merges `parts`; empty intervals are dropped (they grant nothing).
    pub fn new(parts: impl IntoIterator<Item = (KeyInterval, String)>) -> Self {
        let mut parts: Vec<(KeyInterval, String)> =
            parts.into_iter().filter(|(i, _)| !i.is_empty()).collect();
        parts.sort();
        let mut merged: Vec<Merged> = Vec::new();
        for (interval, label) in parts {
            match merged.last_mut() {
                // Touching counts: etcd's Contains sees [a, b) and [b, c) as contiguous.
                Some(last) if last.interval.end >= End::Key(interval.begin.clone()) => {
                    last.interval.end = last.interval.end.clone().max(interval.end);
                    last.sources.insert(label);
                }
                _ => merged.push(Merged {
                    interval,
                    sources: BTreeSet::from([label]),
                }),
            }
        }
        Self { merged }
    }

    /// Unlabelled intervals.
    pub fn of(intervals: impl IntoIterator<Item = KeyInterval>) -> Self {
        Self::new(intervals.into_iter().map(|i| (i, String::new())))
    }

    pub fn merged(&self) -> &[Merged] {
        &self.merged
    }

    pub fn is_empty(&self) -> bool {
        self.merged.is_empty()
    }

    /// etcd's answer for a request on `query`: the whole interval lies in the union. (A
    /// single key is the interval `[key, key\0)`, so this also answers put and get.)
    pub fn covers(&self, query: &KeyInterval) -> bool {
        !query.is_empty() && self.merged.iter().any(|m| m.interval.contains(query))
    }

    /// True when some key of `query` lies in the union.
    pub fn intersects(&self, query: &KeyInterval) -> bool {
        self.merged.iter().any(|m| m.interval.overlaps(query))
    }

    /// The parts of `query` in the union, in key order.
    pub fn intersection(&self, query: &KeyInterval) -> Vec<KeyInterval> {
        self.merged
            .iter()
            .filter_map(|m| m.interval.intersection(query))
            .collect()
    }

    /// The parts of `query` outside the union, in key order.
    pub fn uncovered(&self, query: &KeyInterval) -> Vec<KeyInterval> {
        let mut gaps = Vec::new();
        let mut cursor = End::Key(query.begin.clone());
        for m in self.merged.iter().filter(|m| m.interval.overlaps(query)) {
            if let End::Key(at) = &cursor
                && *at < m.interval.begin
            {
                gaps.push(KeyInterval {
                    begin: at.clone(),
                    end: End::Key(m.interval.begin.clone()),
                });
            }
            cursor = cursor.max(m.interval.end.clone());
        }
        if let End::Key(at) = cursor {
            let rest = KeyInterval {
                begin: at,
                end: query.end.clone(),
            };
            if !rest.is_empty() {
                gaps.push(rest);
            }
        }
        gaps
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn set(parts: &[(KeyInterval, &str)]) -> RangeSet {
        RangeSet::new(parts.iter().map(|(i, l)| (i.clone(), (*l).to_owned())))
    }

    fn range(begin: &str, end: &str) -> KeyInterval {
        KeyInterval::from_etcd(begin.as_bytes(), end.as_bytes())
    }

    #[test]
    fn an_exact_key_is_one_key_and_not_the_prefix_it_spells() {
        let exact = set(&[(KeyInterval::point(b"/r/nodes/node1"), "a")]);
        assert!(exact.covers(&KeyInterval::point(b"/r/nodes/node1")));
        assert!(!exact.covers(&KeyInterval::point(b"/r/nodes/node10")));
        assert!(!exact.covers(&KeyInterval::point(b"/r/nodes/node1/x")));
        // A list of the "prefix" needs every key under it, not just the one.
        assert!(!exact.covers(&KeyInterval::prefix(b"/r/nodes/node1")));
        assert_eq!(
            KeyInterval::from_etcd(b"/k", b""),
            KeyInterval::point(b"/k")
        );
        assert_eq!(KeyInterval::point(b"/k").kind(), Kind::Key);
        assert_eq!(KeyInterval::point(b"/k").etcd_range_end(), b"");
    }

    #[test]
    fn a_prefix_without_its_trailing_slash_also_covers_node10() {
        let slash = set(&[(KeyInterval::prefix(b"/felix/host/node1/"), "a")]);
        let bare = set(&[(KeyInterval::prefix(b"/felix/host/node1"), "a")]);
        let node10 = KeyInterval::point(b"/felix/host/node10/status");
        assert!(slash.covers(&KeyInterval::point(b"/felix/host/node1/status")));
        assert!(!slash.covers(&node10));
        assert!(bare.covers(&node10));
        assert!(bare.covers(&KeyInterval::prefix(b"/felix/host/node10/")));
        // The key without the slash is not inside the slashed prefix.
        assert!(!slash.covers(&KeyInterval::point(b"/felix/host/node1")));
        assert_eq!(KeyInterval::prefix(b"/a/").end, End::Key(b"/a0".to_vec()));
        assert_eq!(KeyInterval::prefix(b"/a/").kind(), Kind::Prefix);
    }

    #[test]
    fn range_end_nul_means_every_key_from_key_on() {
        let from = set(&[(range("/zz/", "\0"), "a")]);
        assert_eq!(range("/zz/", "\0").kind(), Kind::FromKey);
        assert_eq!(range("/zz/", "\0").etcd_range_end(), b"\0");
        assert!(from.covers(&KeyInterval::point(b"/zz/")));
        assert!(from.covers(&KeyInterval::point(b"/zzz")));
        assert!(from.covers(&KeyInterval::point(b"\xff\xff")));
        assert!(from.covers(&range("/zz/a", "\0")));
        assert!(!from.covers(&KeyInterval::point(b"/zz")));
        assert!(!from.covers(&KeyInterval::prefix(b"/zz")));
        // A bounded grant never covers an unbounded request.
        let bounded = set(&[(KeyInterval::from_etcd(b"/zz/", b"\xff\xff\xff"), "a")]);
        assert!(!bounded.covers(&range("/zz/", "\0")));
    }

    #[test]
    fn intervals_merge_across_roles_touching_ones_included() {
        let merged = set(&[
            (range("/m/", "/m/5"), "role-a"),
            (range("/m/5", "/m0"), "role-b"),
            (KeyInterval::point(b"/n"), "role-c"),
        ]);
        assert!(merged.covers(&KeyInterval::prefix(b"/m/")));
        assert_eq!(merged.merged().len(), 2);
        assert_eq!(
            merged.merged()[0].sources,
            BTreeSet::from(["role-a".to_owned(), "role-b".to_owned()])
        );
        assert_eq!(merged.merged()[0].interval, KeyInterval::prefix(b"/m/"));
        // Neither role alone would do.
        assert!(!set(&[(range("/m/", "/m/5"), "role-a")]).covers(&KeyInterval::prefix(b"/m/")));
        // Overlapping and nested intervals merge too.
        let nested = set(&[
            (KeyInterval::prefix(b"/a/"), "x"),
            (KeyInterval::point(b"/a/b"), "y"),
            (range("/a/c", "/b"), "z"),
        ]);
        assert_eq!(nested.merged().len(), 1);
        assert_eq!(nested.merged()[0].interval, range("/a/", "/b"));
        assert_eq!(nested.merged()[0].interval.kind(), Kind::Range);
    }

    #[test]
    fn a_range_partly_covered_is_refused_and_the_gaps_are_named() {
        let partial = set(&[
            (KeyInterval::prefix(b"/p/a"), "a"),
            (KeyInterval::prefix(b"/p/c"), "b"),
        ]);
        let query = KeyInterval::prefix(b"/p/");
        assert!(!partial.covers(&query));
        assert!(partial.intersects(&query));
        assert!(partial.covers(&KeyInterval::point(b"/p/a/x")));
        assert_eq!(
            partial.uncovered(&query),
            vec![
                range("/p/", "/p/a"),
                range("/p/b", "/p/c"),
                range("/p/d", "/p0")
            ]
        );
        assert_eq!(
            partial.intersection(&query),
            vec![KeyInterval::prefix(b"/p/a"), KeyInterval::prefix(b"/p/c")]
        );
        assert!(RangeSet::default().uncovered(&query) == vec![query.clone()]);
        assert!(set(&[(query.clone(), "a")]).uncovered(&query).is_empty());
        assert!(!partial.intersects(&KeyInterval::point(b"/q")));
    }

    #[test]
    fn shown_as_etcdctl_would_grant_them() {
        assert_eq!(KeyInterval::point(b"/k").to_string(), "key /k");
        assert_eq!(KeyInterval::prefix(b"/k/").to_string(), "prefix /k/");
        assert_eq!(range("/k/", "\0").to_string(), "from-key /k/");
        assert_eq!(range("/a", "/c").to_string(), "range [/a, /c)");
        assert_eq!(range("/a", "/b").to_string(), "prefix /a");
        let json = serde_json::to_value(range("/k/", "\0")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"key": "/k/", "range_end": "\u{0}", "kind": "from_key"})
        );
    }
}
