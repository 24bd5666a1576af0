//! Snapshot times are RFC 3339: a small parser, checked against known instants.

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`) into milliseconds since the epoch.
pub fn rfc3339_ms(text: &str) -> i64 {
    let raw = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> i64 {
        let digits = &text[range.clone()];
        assert!(
            digits.bytes().all(|c| c.is_ascii_digit()),
            "'{text}': not digits at {range:?}"
        );
        digits.parse().expect("digits")
    };
    assert!(raw.len() >= 20, "'{text}' is too short for RFC 3339");
    assert_eq!(
        (raw[4], raw[7], raw[10], raw[13], raw[16]),
        (b'-', b'-', b'T', b':', b':'),
        "'{text}' is not RFC 3339"
    );
    let year = num(0..4);
    let month = num(5..7);
    let day = num(8..10);
    let hour = num(11..13);
    let minute = num(14..16);
    let second = num(17..19);
    assert!(
        (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second < 61,
        "'{text}': field out of range"
    );
    let mut pos = 19;
    let mut millis = 0i64;
    if raw[pos] == b'.' {
        let start = pos + 1;
        pos = start;
        while pos < raw.len() && raw[pos].is_ascii_digit() {
            pos += 1;
        }
        assert!(pos > start, "'{text}': empty fraction");
        let frac = format!("{:0<3}", &text[start..pos]);
        millis = frac[..3].parse().expect("fraction");
    }
    let offset_min = match &text[pos..] {
        "Z" | "z" => 0,
        rest => {
            assert_eq!(rest.len(), 6, "'{text}': bad offset");
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => panic!("'{text}': bad offset"),
            };
            assert_eq!(rest.as_bytes()[3], b':');
            sign * (num(pos + 1..pos + 3) * 60 + num(pos + 4..pos + 6))
        }
    };
    // Days from civil (proleptic Gregorian), Howard Hinnant's algorithm.
    let shifted = if month <= 2 { year - 1 } else { year };
    let era = shifted.div_euclid(400);
    let yoe = shifted - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60) * 1000) + millis
}

#[test]
fn rfc3339_parser_self_check() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), 0);
    assert_eq!(rfc3339_ms("2000-02-29T00:00:00.5Z"), 951_782_400_500);
    assert_eq!(rfc3339_ms("2000-02-29T01:00:00+01:00"), 951_782_400_000);
}
