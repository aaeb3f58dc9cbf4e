//! `hub user add|remove|list`: edits the credentials file. The password
//! comes from `--password` or the first line of standard input, so it need
//! not appear in the process list or shell history.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;

use super::credentials::Users;
use crate::acl::{Action, Permission, Rule};

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Adds a user, or replaces its password and settings.
    Add {
        /// The credentials file (created if missing).
        #[arg(long)]
        file: PathBuf,
        username: String,
        /// Tenant the user belongs to (its own topic namespace).
        #[arg(long)]
        tenant: Option<String>,
        /// Makes this a sub-account of a main account (same tenant,
        /// narrower rights: the --allow/--deny rules below).
        #[arg(long)]
        parent: Option<String>,
        /// The password; read from standard input when absent.
        #[arg(long)]
        password: Option<String>,
        /// Sub-account rule `[publish|subscribe|all:]<topic filter>`, in order.
        #[arg(long)]
        allow: Vec<String>,
        /// Sub-account deny rule, same form; deny rules come first.
        #[arg(long)]
        deny: Vec<String>,
    },
    /// Removes a user.
    Remove {
        #[arg(long)]
        file: PathBuf,
        username: String,
    },
    /// Lists users with their tenant and main account.
    List {
        #[arg(long)]
        file: PathBuf,
    },
}

/// Runs the command; returns what to print.
pub fn run(cmd: UserCommand) -> anyhow::Result<String> {
    match cmd {
        UserCommand::Add {
            file,
            username,
            tenant,
            parent,
            password,
            allow,
            deny,
        } => {
            let password = match password {
                Some(p) => p,
                None => read_password()?,
            };
            if password.is_empty() {
                anyhow::bail!("empty password");
            }
            let mut rules = Vec::new();
            for (perm, specs) in [(Permission::Deny, &deny), (Permission::Allow, &allow)] {
                for s in specs {
                    rules.push(parse_rule(perm, s)?);
                }
            }
            if !rules.is_empty() && parent.is_none() {
                anyhow::bail!("--allow/--deny narrow a sub-account: give --parent too");
            }
            crate::acl::validate_rules(&rules).map_err(anyhow::Error::msg)?;
            let mut users = Users::load(&file)?;
            users.add(
                &username,
                &password,
                tenant,
                parent,
                rules,
                argon2::Params::default(),
            )?;
            users.save(&file)?;
            Ok(format!("user `{username}` saved in {}", file.display()))
        }
        UserCommand::Remove { file, username } => {
            let mut users = Users::load(&file)?;
            users.remove(&username)?;
            users.save(&file)?;
            Ok(format!("user `{username}` removed from {}", file.display()))
        }
        UserCommand::List { file } => {
            let users = Users::load(&file)?;
            let mut out = String::new();
            for (name, u) in &users.users {
                out.push_str(name);
                if let Some(t) = &u.tenant {
                    out.push_str(&format!(" tenant={t}"));
                }
                if let Some(p) = &u.parent {
                    out.push_str(&format!(" parent={p} rules={}", u.acl.len()));
                }
                out.push('\n');
            }
            Ok(out)
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn parse_rule(permission: Permission, spec: &str) -> anyhow::Result<Rule> {
    let (action, topic) = match spec.split_once(':') {
        Some(("publish", t)) => (Action::Publish, t),
        Some(("subscribe", t)) => (Action::Subscribe, t),
        Some(("all", t)) => (Action::All, t),
        _ => (Action::All, spec),
    };
    Ok(Rule::new(permission, action, topic))
}
