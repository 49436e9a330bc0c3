//! Semver classification of a move from one version to another.

use semver::Version;
use serde::Serialize;

/// What moving a pin from one version to another means to its dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveKind {
    /// The same version.
    Same,
    /// Cargo's caret rule takes one for the other: dependents keep building.
    Compatible,
    /// Another major version (for 0.x, another minor; for 0.0.x, another patch).
    Breaking,
}

impl MoveKind {
    /// The word the report uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveKind::Same => "same",
            MoveKind::Compatible => "compatible",
            MoveKind::Breaking => "breaking",
        }
    }
}

/// Whether `a` and `b` are the same semver line under cargo's caret rule
/// (the leftmost non-zero component must agree).
pub fn compatible(a: &Version, b: &Version) -> bool {
    if a.major != b.major {
        false
    } else if a.major > 0 {
        true
    } else if a.minor != b.minor {
        false
    } else if a.minor > 0 {
        true
    } else {
        a.patch == b.patch
    }
}

/// Classifies the move from `from` to `to` (either direction).
pub fn classify(from: &Version, to: &Version) -> MoveKind {
    if from == to {
        MoveKind::Same
    } else if compatible(from, to) {
        MoveKind::Compatible
    } else {
        MoveKind::Breaking
    }
}

/// How far `to` is from `from`, in words: the number of releases between
/// them when the release list is known (`releases`, unyanked, no
/// pre-releases), else the first component that differs ("2 minor").
pub fn distance(from: &Version, to: &Version, releases: Option<&[Version]>) -> String {
    if from == to {
        return "none".to_owned();
    }
    let (lo, hi, dir) = if from < to {
        (from, to, "")
    } else {
        (to, from, " (older)")
    };
    if let Some(releases) = releases {
        let n = releases.iter().filter(|v| *v > lo && *v <= hi).count();
        let word = if n == 1 { "release" } else { "releases" };
        return format!("{n} {word}{dir}");
    }
    let (n, what) = if hi.major != lo.major {
        (hi.major - lo.major, "major")
    } else if hi.minor != lo.minor {
        (hi.minor - lo.minor, "minor")
    } else {
        (hi.patch.saturating_sub(lo.patch), "patch")
    };
    format!("{n} {what}{dir}")
}

/// The newest release compatible with `current` and the newest overall,
/// among `releases` (pre-releases and yanked ones already left out).
pub fn newest(current: &Version, releases: &[Version]) -> (Option<Version>, Option<Version>) {
    let compat = releases
        .iter()
        .filter(|v| compatible(current, v))
        .max()
        .cloned();
    let overall = releases.iter().max().cloned();
    (compat, overall)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn caret_rule_by_leftmost_non_zero_component() {
        assert_eq!(classify(&v("2.6.0"), &v("2.7.1")), MoveKind::Compatible);
        assert_eq!(classify(&v("1.47.0"), &v("2.0.0")), MoveKind::Breaking);
        assert_eq!(classify(&v("0.10.2"), &v("0.10.9")), MoveKind::Compatible);
        assert_eq!(classify(&v("0.10.2"), &v("0.11.1")), MoveKind::Breaking);
        assert_eq!(classify(&v("0.22.2"), &v("0.21.4")), MoveKind::Breaking);
        assert_eq!(classify(&v("0.0.3"), &v("0.0.4")), MoveKind::Breaking);
        assert_eq!(classify(&v("0.0.3"), &v("0.0.3")), MoveKind::Same);
        assert_eq!(classify(&v("2.7.1"), &v("2.6.0")), MoveKind::Compatible);
    }

    #[test]
    fn distance_counts_releases_when_known() {
        let rel = [v("2.5.0"), v("2.6.0"), v("2.7.1")];
        assert_eq!(distance(&v("2.6.0"), &v("2.7.1"), Some(&rel)), "1 release");
        assert_eq!(distance(&v("2.5.0"), &v("2.7.1"), Some(&rel)), "2 releases");
        assert_eq!(
            distance(&v("2.7.1"), &v("2.5.0"), Some(&rel)),
            "2 releases (older)"
        );
        assert_eq!(distance(&v("2.6.0"), &v("2.7.1"), None), "1 minor");
        assert_eq!(distance(&v("0.22.2"), &v("0.23.0"), None), "1 minor");
        assert_eq!(distance(&v("1.0.0"), &v("3.0.0"), None), "2 major");
        assert_eq!(distance(&v("1.0.0"), &v("1.0.0"), None), "none");
    }

    #[test]
    fn newest_compatible_and_overall() {
        let rel = [v("0.10.1"), v("0.10.2"), v("0.10.3"), v("0.11.1")];
        let (c, o) = newest(&v("0.10.2"), &rel);
        assert_eq!(c, Some(v("0.10.3")));
        assert_eq!(o, Some(v("0.11.1")));
    }
}
