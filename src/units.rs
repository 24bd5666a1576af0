//! Parsing of sizes (`256KiB`) and short intervals (`1h`, `30m`, `0`) given on the command line.
//!
//! Intervals here are for timeouts and grace periods: `m` means minutes. Retention durations
//! (`--keep-within`, where `m` means months as in restic) are parsed by
//! `retention::parse_duration`.

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses a size: digits and an optional unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB
/// (all binary multiples).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| Error::InvalidInput(format!("'{s}' is not a size like 256KiB")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(Error::InvalidInput(format!(
                "'{s}' has an unknown unit; use B, KiB, MiB, GiB or TiB"
            )));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| Error::InvalidInput(format!("'{s}' is too large")))
}

/// Parses an interval such as `0`, `90s`, `30m`, `1h`, `2d` or `1h30m`.
pub fn parse_interval(s: &str) -> Result<Duration> {
    let bad = |why: &str| {
        Error::InvalidInput(format!(
            "'{s}' is not an interval: {why} (write '0', '90s', '30m', '1h' or '1h30m'; units s, m = minutes, h, d)"
        ))
    };
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        let Some(unit) = rest[digits..].chars().next() else {
            return Err(bad("the last number has no unit"));
        };
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad(&format!("unknown unit '{unit}'"))),
        };
        total = n
            .checked_mul(secs)
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| bad("it is too long"))?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256KiB").expect("k"), 256 << 10);
        assert_eq!(parse_size("10").expect("b"), 10);
        assert_eq!(parse_size("2 GiB").expect("g"), 2 << 30);
        assert_eq!(parse_size("1t").expect("t"), 1 << 40);
        assert!(parse_size("x").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("20000000T").is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("0").expect("0"), Duration::ZERO);
        assert_eq!(parse_interval("90s").expect("s"), Duration::from_secs(90));
        assert_eq!(parse_interval("30m").expect("m"), Duration::from_secs(1800));
        assert_eq!(
            parse_interval("1h30m").expect("hm"),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_interval("2d").expect("d"),
            Duration::from_secs(172_800)
        );
        for bad in ["", "h", "5", "5x", "-1h", "1h 2m"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
