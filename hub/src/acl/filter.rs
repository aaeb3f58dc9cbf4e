//! Set relations between topic filters, for deciding what a subscription
//! could ever receive: `covers(p, f)` (every topic `f` matches, `p` matches
//! too) and `overlaps(p, f)` (some topic matches both).

/// Whether every topic matched by filter `f` is matched by filter `p`.
pub fn covers(p: &str, f: &str) -> bool {
    let mut ps = p.split('/');
    let mut fs = f.split('/');
    loop {
        match (ps.next(), fs.next()) {
            (Some("#"), _) => return true,
            // `f`'s `#` reaches any depth; only a `#` in `p` covers that.
            (_, Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            // A literal in `p` against `+` in `f`, or one ended before the
            // other (a `p` ending in `#` also matches its parent, seen above).
            _ => return false,
        }
    }
}

/// Whether some topic is matched by both filters.
pub fn overlaps(p: &str, f: &str) -> bool {
    let mut ps = p.split('/');
    let mut fs = f.split('/');
    loop {
        match (ps.next(), fs.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            // Different literals, or one ended (a following `#` was seen above).
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover() {
        assert!(covers("#", "a/b/#"));
        assert!(covers("a/#", "a/b"));
        assert!(covers("a/#", "a/+/c"));
        assert!(covers("a/+", "a/b"));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("a/b", "#"));
        assert!(!covers("a/+/c", "a/+"));
        assert!(!covers("a", "a/#"));
    }

    #[test]
    fn overlap() {
        assert!(overlaps("a/secret/#", "#"));
        assert!(overlaps("a/secret/#", "+/secret/x"));
        assert!(overlaps("a/secret/#", "a/+/x"));
        assert!(overlaps("a/secret", "a/#"));
        assert!(overlaps("a/+", "a/b"));
        assert!(!overlaps("a/secret/#", "a/public/#"));
        assert!(!overlaps("a/b", "a/b/c"));
        assert!(!overlaps("a/+", "b/+"));
        assert!(overlaps("a/b/#", "a/b"));
    }
}
