//! dive's CI gates over an [`Analysis`]: lowest efficiency, highest wasted bytes,
//! highest wasted share of the user bytes. Each rule passes or fails with a sentence
//! naming it and both numbers; the CLI turns any failure into exit code 1.

use super::Analysis;
use serde::Serialize;

/// The thresholds; a rule left `None` is not checked.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gates {
    /// Fail when [`Analysis::efficiency`] is below this (0..1).
    pub lowest_efficiency: Option<f64>,
    /// Fail when [`Analysis::wasted_bytes`] is above this.
    pub highest_wasted_bytes: Option<u64>,
    /// Fail when [`Analysis::user_wasted_percent`] (a fraction, as in dive) is above
    /// this.
    pub highest_user_wasted_percent: Option<f64>,
}

impl Gates {
    /// dive's defaults (`lowestEfficiency: 0.9`, `highestUserWastedPercent: 0.1`,
    /// `highestWastedBytes: disabled`), used when CI mode is asked for without any
    /// rule. Unlike dive, giving one rule does not keep the defaults of the others: the
    /// rules checked are exactly the ones named.
    pub fn dive_defaults() -> Gates {
        Gates {
            lowest_efficiency: Some(0.9),
            highest_wasted_bytes: None,
            highest_user_wasted_percent: Some(0.1),
        }
    }

    /// True when no rule is set.
    pub fn is_empty(&self) -> bool {
        *self == Gates::default()
    }
}

/// One rule's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct RuleResult {
    /// The rule, named as its flag (`lowest-efficiency`).
    pub rule: &'static str,
    /// Whether the image passes it.
    pub passed: bool,
    /// The comparison, with both numbers.
    pub message: String,
}

/// A fraction as the rules take it and as the summary shows it: `0.9000 (90.0 %)`.
fn fraction(f: f64) -> String {
    format!("{f:.4} ({:.1} %)", f * 100.0)
}

/// Checks `a` against every rule set in `gates`, in a fixed order.
pub fn evaluate(a: &Analysis, gates: &Gates) -> Vec<RuleResult> {
    let mut out = Vec::new();
    let mut rule = |rule, passed, what: String, bound: &str, limit: String| {
        out.push(RuleResult {
            rule,
            passed,
            message: format!("{what} (the {bound} allowed is {limit})"),
        })
    };
    if let Some(min) = gates.lowest_efficiency {
        rule(
            "lowest-efficiency",
            a.efficiency >= min,
            format!("image efficiency is {}", fraction(a.efficiency)),
            "lowest",
            fraction(min),
        );
    }
    if let Some(max) = gates.highest_wasted_bytes {
        rule(
            "highest-wasted-bytes",
            a.wasted_bytes <= max,
            format!("{} bytes are wasted", a.wasted_bytes),
            "highest",
            max.to_string(),
        );
    }
    if let Some(max) = gates.highest_user_wasted_percent {
        rule(
            "highest-user-wasted-percent",
            a.user_wasted_percent <= max,
            format!(
                "wasted bytes are {} of the bytes added after the first layer",
                fraction(a.user_wasted_percent)
            ),
            "highest",
            fraction(max),
        );
    }
    out
}

/// Parses a byte count the way dive's `highestWastedBytes` does (go-humanize): a number,
/// an optional space and a unit, any case: none or `B`, `K`/`KB` (1000), `KI`/`KIB`
/// (1024), and likewise `M`, `G`, `T`, `P`, `E`. `20MB` is 20 000 000 bytes; `20MiB`
/// is 20 971 520.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("{s:?} is not a size (examples: 3000000, 20MB, 1.5GiB)");
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let (prefix, binary) = match unit.strip_suffix('i') {
        Some(p) if !p.is_empty() => (p, true),
        Some(_) => return Err(bad()),
        None => (unit, false),
    };
    let power = match prefix {
        "" if !binary => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        "e" => 6,
        _ => return Err(bad()),
    };
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let v = n * base.powi(power);
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(v.round() as u64)
}

/// Parses a fraction (`0.9`, dive's form) or a percentage (`90%`) into a fraction; `max`
/// bounds it. A bare number above 1 is refused, never read as a fraction of more than
/// 100 % nor as a percentage: `--highest-user-wasted-percent 10` meant 1000 % to dive
/// while its name says percent, so the user is asked to write which one (`0.1`, `10%`).
/// More than 100 %, where `max` allows it, is written as a percentage (`150%`).
pub fn parse_fraction(s: &str, max: Option<f64>) -> Result<f64, String> {
    let t = s.trim();
    let (num, percent) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a number (examples: 0.9, 90%)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} is negative or not finite"));
    }
    if !percent && v > 1.0 {
        let mut msg = format!(
            "{s:?} is more than 1: the rule takes a fraction (0.1 means 10 %); write {} or {}%",
            decimal(v / 100.0),
            decimal(v)
        );
        if max.is_none() {
            msg += &format!(
                " (or {}% if {} times is meant)",
                decimal(v * 100.0),
                decimal(v)
            );
        }
        return Err(msg);
    }
    let v = if percent { v / 100.0 } else { v };
    if let Some(m) = max.filter(|&m| v > m) {
        return Err(format!("{s:?} is more than {}%", decimal(m * 100.0)));
    }
    Ok(v)
}

/// A number as a person writes it: `0.1`, `10`, `1.5` (no float noise, no trailing zeros).
fn decimal(v: f64) -> String {
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_dive() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("3000000", Some(3_000_000)),
            ("20MB", Some(20_000_000)),
            ("20mb", Some(20_000_000)),
            ("20M", Some(20_000_000)),
            ("20 MB", Some(20_000_000)),
            ("20MiB", Some(20 << 20)),
            ("20Mi", Some(20 << 20)),
            ("1.5GB", Some(1_500_000_000)),
            ("1KiB", Some(1024)),
            ("7B", Some(7)),
            ("", None),
            ("MB", None),
            ("-5", None),
            ("5i", None),
            ("5XB", None),
            ("1e3", None),
            ("99999999999EB", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_bytes(s).ok(), *want, "{s:?}");
        }
    }

    #[test]
    fn fractions_parse() {
        let cases: &[(&str, Option<f64>, Option<f64>)] = &[
            ("0.9", Some(1.0), Some(0.9)),
            ("1", Some(1.0), Some(1.0)),
            ("90%", Some(1.0), Some(0.9)),
            ("100%", Some(1.0), Some(1.0)),
            ("101%", Some(1.0), None),
            ("1.5", Some(1.0), None),
            ("0.1", None, Some(0.1)),
            ("10%", None, Some(0.1)),
            ("150%", None, Some(1.5)),
            // dive's fraction over 1 is refused: the flag's name says percent.
            ("1.5", None, None),
            ("10", None, None),
            ("-0.1", None, None),
            ("NaN", None, None),
            ("x", None, None),
        ];
        for (s, max, want) in cases {
            assert_eq!(parse_fraction(s, *max).ok(), *want, "{s:?}");
        }
        assert_eq!(
            parse_fraction("10", None).unwrap_err(),
            "\"10\" is more than 1: the rule takes a fraction (0.1 means 10 %); write 0.1 or 10% (or 1000% if 10 times is meant)"
        );
        assert_eq!(
            parse_fraction("90", Some(1.0)).unwrap_err(),
            "\"90\" is more than 1: the rule takes a fraction (0.1 means 10 %); write 0.9 or 90%"
        );
        assert_eq!(
            parse_fraction("120%", Some(1.0)).unwrap_err(),
            "\"120%\" is more than 100%"
        );
    }
}
