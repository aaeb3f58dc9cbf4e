//! Topic names and filters: validation (v5 §4.7, v3.1.1 §4.7), matching, and
//! shared-subscription parsing (`$share/<group>/<filter>`, v5 §4.8.2).

/// Longest topic name or filter the wire format allows.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Checks a PUBLISH or will topic name.
pub fn validate_topic_name(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        return Err("[MQTT-4.7.3-1] topic name is empty");
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err("[MQTT-4.7.3-3] topic name longer than 65,535 bytes");
    }
    if topic.contains(['+', '#']) {
        return Err("[MQTT-3.3.2-2] PUBLISH topic contains a wildcard");
    }
    if topic.contains('\0') {
        return Err("[MQTT-4.7.3-2] topic name contains U+0000");
    }
    Ok(())
}

/// Checks a SUBSCRIBE/UNSUBSCRIBE topic filter, including the
/// `$share/<group>/<filter>` form.
pub fn validate_topic_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("[MQTT-4.7.3-1] topic filter is empty");
    }
    if filter.len() > MAX_TOPIC_LEN {
        return Err("[MQTT-4.7.3-3] topic filter longer than 65,535 bytes");
    }
    if filter.contains('\0') {
        return Err("[MQTT-4.7.3-2] topic filter contains U+0000");
    }
    let inner = match parse_shared(filter) {
        Some(Ok((_, inner))) => inner,
        Some(Err(e)) => return Err(e),
        None => filter,
    };
    let mut levels = inner.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err("[MQTT-4.7.1-1] '#' must be the last level and stand alone");
        }
        if level.contains('+') && level != "+" {
            return Err("[MQTT-4.7.1-2] '+' must occupy an entire level");
        }
    }
    Ok(())
}

/// Splits `$share/<group>/<filter>`: `None` when the filter is not shared,
/// `Some(Err)` when it is shared but malformed.
pub fn parse_shared(filter: &str) -> Option<Result<(&str, &str), &'static str>> {
    let rest = filter.strip_prefix("$share/")?;
    Some(match rest.split_once('/') {
        Some((group, inner)) if !group.is_empty() && !inner.is_empty() => {
            if group.contains(['+', '#']) {
                Err("[MQTT-4.8.2-2] share name contains a wildcard")
            } else {
                Ok((group, inner))
            }
        }
        _ => Err("[MQTT-4.8.2-1] shared subscription needs a share name and a filter"),
    })
}

/// Whether `filter` (not shared) matches the topic `name`. Wildcards at the
/// first level do not match `$`-topics (v5 §4.7.2).
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut n = name.split('/');
    loop {
        match (f.next(), n.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Root under which the hub keeps each tenant's topics
/// (`$tenant/<id>/<topic>`). Leading wildcards never match `$` topics, so
/// no filter outside a namespace reaches into it.
pub const NAMESPACE_ROOT: &str = "$tenant/";

/// The topic as its namespace's clients know it: `$tenant/<id>/a/b` is
/// `a/b` on the wire. Other topics are unchanged.
pub fn wire_topic(topic: &str) -> &str {
    match topic.strip_prefix(NAMESPACE_ROOT) {
        Some(rest) => match rest.split_once('/') {
            Some((_, inner)) if !inner.is_empty() => inner,
            _ => topic,
        },
        None => topic,
    }
}

/// Whether a filter contains a wildcard level.
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_topics_lose_their_root_on_the_wire() {
        assert_eq!(wire_topic("$tenant/acme/a/b"), "a/b");
        assert_eq!(wire_topic("$tenant/acme/"), "$tenant/acme/");
        assert_eq!(wire_topic("$tenant/acme"), "$tenant/acme");
        assert_eq!(wire_topic("a/$tenant/x/y"), "a/$tenant/x/y");
        assert!(!matches("#", "$tenant/acme/a"));
        assert!(!matches("+/#", "$tenant/acme/a"));
    }

    #[test]
    fn names() {
        assert!(validate_topic_name("a/b").is_ok());
        assert!(validate_topic_name("/").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("a/+").is_err());
        assert!(validate_topic_name("a/#").is_err());
        assert!(validate_topic_name("a\0b").is_err());
    }

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "a/+/b",
            "a/#",
            "+/+",
            "/",
            "$share/g/a/#",
            "$SYS/#",
        ] {
            assert!(validate_topic_filter(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a#",
            "a/#/b",
            "a+",
            "a/b+/c",
            "$share/g",
            "$share//a",
            "$share/g+/a",
        ] {
            assert!(validate_topic_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/c"));
        assert!(matches("a/+", "a/b"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(matches("+/+", "/x"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(matches("a/+/#", "a/b"));
    }

    #[test]
    fn shared() {
        assert_eq!(parse_shared("$share/g/a/b"), Some(Ok(("g", "a/b"))));
        assert_eq!(parse_shared("a/b"), None);
        assert!(matches!(parse_shared("$share/g"), Some(Err(_))));
    }
}
