//! `${...}` templates for queue topics, record keys, headers and MQTT topics.
//! Parsed once when the config loads (so a typo is a config error naming the
//! field), rendered per message from a `Vars` view of that message.

use std::fmt::Write;

/// Which variables a template may use: uplink templates see the MQTT
/// publish, downlink templates see the queue record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Uplink,
    Downlink,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    ClientId,
    Username,
    Topic,
    /// 1-based topic level.
    Level(usize),
    Qos,
    /// MQTT user property (uplink).
    User(String),
    /// Record key (downlink).
    Key,
    /// Record header (downlink).
    Header(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a template is rendered against.
pub trait Vars {
    fn client_id(&self) -> &str {
        ""
    }
    fn username(&self) -> &str {
        ""
    }
    fn topic(&self) -> &str {
        ""
    }
    fn qos(&self) -> u8 {
        0
    }
    fn user_property(&self, _name: &str) -> Option<&str> {
        None
    }
    fn key(&self) -> &str {
        ""
    }
    fn header(&self, _name: &str) -> Option<&str> {
        None
    }
}

impl Template {
    /// Parses `text`; the error says what is wrong (the caller adds the field).
    pub fn parse(text: &str, scope: Scope) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
            parts.push(parse_var(after[..end].trim(), scope)?);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Whether the template has no variables (the text is used as is).
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    pub fn render(&self, v: &dyn Vars) -> String {
        let mut out = String::new();
        self.render_into(v, &mut out);
        out
    }

    /// Appends the rendered text to `out` (no allocation of its own).
    pub fn render_into(&self, v: &dyn Vars, out: &mut impl Write) {
        for p in &self.parts {
            // Writing to a String or BytesMut cannot fail.
            let _ = match p {
                Part::Text(t) => out.write_str(t),
                Part::ClientId => out.write_str(v.client_id()),
                Part::Username => out.write_str(v.username()),
                Part::Topic => out.write_str(v.topic()),
                Part::Level(n) => out.write_str(v.topic().split('/').nth(n - 1).unwrap_or("")),
                Part::Qos => out.write_char(char::from(b'0' + v.qos().min(2))),
                Part::User(name) => out.write_str(v.user_property(name).unwrap_or("")),
                Part::Key => out.write_str(v.key()),
                Part::Header(name) => out.write_str(v.header(name).unwrap_or("")),
            };
        }
    }
}

fn parse_var(var: &str, scope: Scope) -> Result<Part, String> {
    let (name, arg) = match var.split_once(char::is_whitespace) {
        Some((n, a)) => (n, Some(a.trim())),
        None => (var, None),
    };
    let part = match (name, arg, scope) {
        ("clientid", None, Scope::Uplink) => Part::ClientId,
        ("username", None, Scope::Uplink) => Part::Username,
        ("topic", None, Scope::Uplink) => Part::Topic,
        ("qos", None, Scope::Uplink) => Part::Qos,
        ("level", Some(n), Scope::Uplink) => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Part::Level(n),
            _ => {
                return Err(format!(
                    "`${{level {n}}}`: the level must be a number from 1"
                ))
            }
        },
        ("user", Some(p), Scope::Uplink) if !p.is_empty() => Part::User(p.to_string()),
        ("key", None, Scope::Downlink) => Part::Key,
        ("header", Some(h), Scope::Downlink) if !h.is_empty() => Part::Header(h.to_string()),
        _ => {
            let allowed = match scope {
                Scope::Uplink => "${clientid} ${username} ${topic} ${qos} ${level N} ${user NAME}",
                Scope::Downlink => "${key} ${header NAME}",
            };
            return Err(format!(
                "unknown variable `${{{var}}}` (allowed: {allowed})"
            ));
        }
    };
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pub;
    impl Vars for Pub {
        fn client_id(&self) -> &str {
            "dev-1"
        }
        fn topic(&self) -> &str {
            "devices/dev-1/up/temp"
        }
        fn qos(&self) -> u8 {
            1
        }
        fn user_property(&self, name: &str) -> Option<&str> {
            (name == "site").then_some("north")
        }
    }

    #[test]
    fn renders_publish_variables() {
        let t = Template::parse(
            "${level 1}.${level 4}/${clientid}/q${qos}/${user site}${username}",
            Scope::Uplink,
        )
        .unwrap();
        assert_eq!(t.render(&Pub), "devices.temp/dev-1/q1/north");
        assert_eq!(
            Template::parse("${level 9}", Scope::Uplink)
                .unwrap()
                .render(&Pub),
            ""
        );
        assert_eq!(
            Template::parse("plain", Scope::Uplink).unwrap().literal(),
            Some("plain")
        );
    }

    #[test]
    fn bad_templates_say_why() {
        let e = Template::parse("a/${nope}", Scope::Uplink).unwrap_err();
        assert!(e.contains("unknown variable `${nope}`"), "{e}");
        let e = Template::parse("a/${key", Scope::Downlink).unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
        assert!(Template::parse("${level 0}", Scope::Uplink).is_err());
        // Downlink templates see the record, not a publisher.
        assert!(Template::parse("${clientid}", Scope::Downlink).is_err());
        assert!(Template::parse("devices/${key}/${header kind}", Scope::Downlink).is_ok());
    }
}
