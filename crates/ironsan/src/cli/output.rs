//! Human output: aligned tables and friendly numbers.

use serde_json::Value;

/// Prints `rows` under `headers`, columns padded to their widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", render(headers, rows));
}

pub(crate) fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count());
                s.push_str(c);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// A string field, or `-`.
pub(crate) fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// The elements of a JSON array (none when `v` is not an array).
pub(crate) fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A field holding an array of strings, joined with `, ` (empty when absent).
pub(crate) fn joined(v: &Value, key: &str) -> String {
    let strings: Vec<&str> = v
        .get(key)
        .map(items)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    strings.join(", ")
}

/// Like [`joined`], but `-` when there is nothing.
pub(crate) fn joined_or_dash(v: &Value, key: &str) -> String {
    let j = joined(v, key);
    if j.is_empty() {
        "-".into()
    } else {
        j
    }
}

/// A number field as an integer (0 when absent).
pub(crate) fn n(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Bytes with a binary unit: `10G`, `1.5G`, `512`.
pub(crate) fn bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["", "K", "M", "G", "T", "P"];
    let mut unit = 0;
    let mut value = b as f64;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b}")
    } else if value.fract() == 0.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// Seconds as a short age: `45s`, `12m`, `3h`, `2d`.
pub(crate) fn age(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Pretty JSON on stdout.
pub(crate) fn json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_numbers_read_well() {
        let t = render(
            &["NAME", "SIZE"],
            &[
                vec!["a".into(), "1G".into()],
                vec!["long-name".into(), "2".into()],
            ],
        );
        assert_eq!(t, "NAME       SIZE\na          1G\nlong-name  2\n");
        assert_eq!(bytes(10 << 30), "10G");
        assert_eq!(bytes(1536 << 20), "1.5G");
        assert_eq!(bytes(512), "512");
        assert_eq!(age(30), "30s");
        assert_eq!(age(3600), "60m");
    }
}
