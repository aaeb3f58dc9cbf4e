//! Access control lists: ordered allow/deny rules, first match wins, then a
//! configurable default. A rule may be limited to a user, a client id or a
//! tenant, and to publish, subscribe or both; its topic pattern may name
//! the client's user (`%u`) and client id (`%c`).
//!
//! Subscriptions are judged by what they could ever receive, so a wildcard
//! cannot leak a denied subtree: a filter is granted only if an allow rule
//! covers all of it before any deny rule overlaps it (or the default is
//! allow and no deny rule overlaps it). `#` is thus refused (SUBACK 0x87 /
//! 0x80) when any part of the tree is denied to the client; the client
//! subscribes to the parts it may read. Deliveries are not filtered later.

pub mod filter;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Publish,
    Subscribe,
    #[default]
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub permission: Permission,
    #[serde(default)]
    pub action: Action,
    /// Topic filter; `%u` and `%c` stand for the user name and client id.
    pub topic: String,
    /// Only for this user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only for this client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Only for clients of this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl Rule {
    /// A rule for everyone (no user, client id or tenant selector).
    pub fn new(permission: Permission, action: Action, topic: &str) -> Rule {
        Rule {
            permission,
            action,
            topic: topic.to_owned(),
            user: None,
            client_id: None,
            tenant: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AclConfig {
    /// Verdict when no rule matches (`allow` keeps the quick start open).
    pub default: Permission,
    pub rules: Vec<Rule>,
}

/// Who asks, as the rules see them (client ids and topics as the client
/// knows them, without any tenant root).
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub user: Option<&'a str>,
    pub client_id: &'a str,
    pub tenant: Option<&'a str>,
}

impl AclConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_rules(&self.rules).map_err(|m| ("acl.rules", m))
    }
}

pub fn validate_rules(rules: &[Rule]) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        let probe = r.topic.replace("%u", "u").replace("%c", "c");
        if let Err(e) = mqtt::topic::validate_topic_filter(&probe) {
            return Err(format!("rule {} topic `{}`: {e}", i + 1, r.topic));
        }
    }
    Ok(())
}

/// Evaluates `rules` in order for one publish topic or subscription filter.
/// `None` when no rule decided.
pub fn decide(rules: &[Rule], who: Who<'_>, action: Action, topic: &str) -> Option<Permission> {
    let publish = action == Action::Publish;
    for r in rules {
        if r.action != Action::All && r.action != action {
            continue;
        }
        if r.user.as_deref().is_some_and(|u| Some(u) != who.user)
            || r.client_id.as_deref().is_some_and(|c| c != who.client_id)
            || r.tenant.as_deref().is_some_and(|t| Some(t) != who.tenant)
        {
            continue;
        }
        let pattern = match expand(&r.topic, who) {
            Some(p) => p,
            // A user name or client id that would turn into a wildcard or a
            // level break cannot be granted by a pattern, only refused.
            None if r.permission == Permission::Deny => return Some(Permission::Deny),
            None => continue,
        };
        let applies = match (publish, r.permission) {
            (true, _) => filter::covers(&pattern, topic),
            (false, Permission::Allow) => filter::covers(&pattern, topic),
            (false, Permission::Deny) => filter::overlaps(&pattern, topic),
        };
        if applies {
            return Some(r.permission);
        }
    }
    None
}

/// Substitutes `%u` and `%c`; `None` if a value is missing or unsafe.
fn expand(pattern: &str, who: Who<'_>) -> Option<String> {
    if !pattern.contains('%') {
        return Some(pattern.to_owned());
    }
    let safe = |v: &str| !v.is_empty() && !v.contains(['+', '#', '/']);
    let mut out = pattern.to_owned();
    if out.contains("%u") {
        let u = who.user.filter(|u| safe(u))?;
        out = out.replace("%u", u);
    }
    if out.contains("%c") {
        if !safe(who.client_id) {
            return None;
        }
        out = out.replace("%c", who.client_id);
    }
    Some(out)
}

/// The verdict of the hub's ACL and of a user's own rule lists (sub-account
/// rules, default deny): every list must allow.
pub fn allowed(
    config: &AclConfig,
    chain: &[Vec<Rule>],
    who: Who<'_>,
    action: Action,
    topic: &str,
) -> bool {
    for rules in chain {
        if decide(rules, who, action, topic) != Some(Permission::Allow) {
            return false;
        }
    }
    decide(&config.rules, who, action, topic).unwrap_or(config.default) == Permission::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> AclConfig {
        toml::from_str(text).unwrap()
    }

    const WHO: Who<'static> = Who {
        user: Some("alice"),
        client_id: "dev1",
        tenant: None,
    };

    #[test]
    fn first_match_wins_then_default() {
        let acl = rules(
            r##"
default = "deny"
[[rules]]
permission = "deny"
topic = "a/secret/#"
[[rules]]
permission = "allow"
topic = "a/#"
"##,
        );
        assert!(allowed(&acl, &[], WHO, Action::Publish, "a/b"));
        assert!(!allowed(&acl, &[], WHO, Action::Publish, "a/secret/x"));
        assert!(!allowed(&acl, &[], WHO, Action::Publish, "b"));
        assert!(allowed(&acl, &[], WHO, Action::Subscribe, "a/public/#"));
        // Could reach a/secret: refused.
        assert!(!allowed(&acl, &[], WHO, Action::Subscribe, "a/#"));
        assert!(!allowed(&acl, &[], WHO, Action::Subscribe, "a/+/x"));
        assert!(!allowed(&acl, &[], WHO, Action::Subscribe, "#"));
    }

    #[test]
    fn user_and_client_patterns() {
        let acl = rules(
            r##"
default = "deny"
[[rules]]
permission = "allow"
topic = "users/%u/#"
[[rules]]
permission = "allow"
action = "publish"
topic = "devices/%c/up"
"##,
        );
        assert!(allowed(&acl, &[], WHO, Action::Subscribe, "users/alice/#"));
        assert!(!allowed(&acl, &[], WHO, Action::Subscribe, "users/bob/#"));
        assert!(!allowed(&acl, &[], WHO, Action::Subscribe, "users/+/#"));
        assert!(allowed(&acl, &[], WHO, Action::Publish, "devices/dev1/up"));
        assert!(!allowed(
            &acl,
            &[],
            WHO,
            Action::Subscribe,
            "devices/dev1/up"
        ));
        let sneaky = Who {
            user: Some("#"),
            ..WHO
        };
        assert!(!allowed(&acl, &[], sneaky, Action::Subscribe, "users/#"));
        let anon = Who { user: None, ..WHO };
        assert!(!allowed(&acl, &[], anon, Action::Publish, "users/alice/x"));
    }

    #[test]
    fn selectors_limit_who_a_rule_is_for() {
        let acl = rules(
            r##"
[[rules]]
permission = "deny"
user = "bob"
topic = "#"
[[rules]]
permission = "deny"
tenant = "acme"
action = "subscribe"
topic = "admin/#"
"##,
        );
        assert!(allowed(&acl, &[], WHO, Action::Publish, "x"));
        let bob = Who {
            user: Some("bob"),
            ..WHO
        };
        assert!(!allowed(&acl, &[], bob, Action::Publish, "x"));
        let acme = Who {
            tenant: Some("acme"),
            ..WHO
        };
        assert!(!allowed(&acl, &[], acme, Action::Subscribe, "#"));
        assert!(allowed(&acl, &[], acme, Action::Publish, "admin/x"));
    }

    #[test]
    fn sub_account_rules_only_narrow() {
        let acl = AclConfig::default();
        let sub = vec![vec![Rule::new(Permission::Allow, Action::All, "sensors/#")]];
        assert!(allowed(&acl, &sub, WHO, Action::Publish, "sensors/t"));
        assert!(!allowed(&acl, &sub, WHO, Action::Publish, "actuators/t"));
        let strict = AclConfig {
            default: Permission::Deny,
            rules: vec![],
        };
        assert!(!allowed(&strict, &sub, WHO, Action::Publish, "sensors/t"));
    }
}
