//! Java's properties text, as `java.util.Properties` loads and stores it:
//! what `server.properties` (Kafka's `Utils.loadProps`) and `meta.properties`
//! are written in, escapes and continuation lines included.

use std::collections::BTreeMap;

/// A `\uXXXX` escape that is not four hex digits (Java's
/// IllegalArgumentException from `Properties.load`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Malformed \\uxxxx encoding on line {line}")]
pub struct ParseError {
    pub line: usize,
}

/// Java's `Properties.load`: `key=value`, `key: value` or `key value` lines,
/// `#`/`!` comments, backslash continuations and escapes.
pub fn load_properties(text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = raw.trim_start_matches([' ', '\t', '\x0c']);
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes.
        let mut logical = line.to_string();
        while logical.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1 {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches([' ', '\t', '\x0c'])),
                None => break,
            }
        }
        // The key ends at the first unescaped '=', ':' or whitespace.
        let chars: Vec<char> = logical.chars().collect();
        let mut end = 0;
        while end < chars.len() {
            match chars[end] {
                '\\' => end += 2,
                '=' | ':' | ' ' | '\t' | '\x0c' => break,
                _ => end += 1,
            }
        }
        let end = end.min(chars.len());
        let mut rest = end;
        while rest < chars.len() && matches!(chars[rest], ' ' | '\t' | '\x0c') {
            rest += 1;
        }
        if rest < chars.len() && matches!(chars[rest], '=' | ':') {
            rest += 1;
            while rest < chars.len() && matches!(chars[rest], ' ' | '\t' | '\x0c') {
                rest += 1;
            }
        }
        let key = unescape(&chars[..end], i + 1)?;
        let value = unescape(&chars[rest..], i + 1)?;
        out.insert(key, value);
    }
    Ok(out)
}

fn unescape(chars: &[char], line: usize) -> Result<String, ParseError> {
    let mut out = String::with_capacity(chars.len());
    let mut it = chars.iter();
    while let Some(&c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = it.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .ok_or(ParseError { line })?;
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            Some(&other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// Java's `Properties.saveConvert` for a `Writer` (no `\uXXXX` escaping).
pub(crate) fn escape(s: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            ' ' if i == 0 || is_key => out.push_str("\\ "),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `java.util.Date.toString()` in UTC: `Thu Oct 24 19:33:01 UTC 2024`.
pub(crate) fn java_date(now_ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now_ms.div_euclid(1000);
    let (days, tod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        tod / 3600,
        tod % 3600 / 60,
        tod % 60,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_syntax() {
        let p = load_properties("a = 1\nb:2\nc 3\n  ! c\nd=x\\\n   y\ne\\:f=\\u0041\\n\n").unwrap();
        assert_eq!(p["a"], "1");
        assert_eq!(p["b"], "2");
        assert_eq!(p["c"], "3");
        assert_eq!(p["d"], "xy");
        assert_eq!(p["e:f"], "A\n");
        assert_eq!(load_properties("a=\\u00zz"), Err(ParseError { line: 1 }));
    }

    #[test]
    fn java_dates() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date(1_729_798_381_000), "Thu Oct 24 19:33:01 UTC 2024");
    }
}
