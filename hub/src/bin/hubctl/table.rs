//! Plain-text rendering of API answers: aligned tables for lists, one
//! `key: value` line per field for objects.

use serde_json::Value;

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows of objects as a table with these columns, widths fitted to content.
pub fn render(rows: &[Value], cols: &[&str]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| cols.iter().map(|c| cell(&r[*c])).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: Vec<String>| {
        let mut s: String = vals
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}  "))
            .collect();
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(cols.iter().map(|c| c.to_uppercase()).collect());
    for r in cells {
        out.push_str(&line(r));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

/// An object as `key: value` lines (nested values as compact JSON).
pub fn object(v: &Value) -> String {
    match v.as_object() {
        Some(o) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", cell(v)))
            .collect(),
        None => format!("{}\n", cell(v)),
    }
}
