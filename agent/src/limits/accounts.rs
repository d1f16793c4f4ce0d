//! Accounts a manifest may give managed files to: an owner matching `allowed_owners` and a
//! group matching `allowed_groups`. Without this limit a server could hand a key to any local
//! account (`group = "users"` with mode 0640) and so to every user of the host.

/// Owners allowed when agent.toml does not say: root, and accounts named for Calico.
pub const DEFAULT_ALLOWED_OWNERS: &[&str] = &["root", "calico*"];
/// Groups allowed when agent.toml does not say: root, and groups named for Calico.
pub const DEFAULT_ALLOWED_GROUPS: &[&str] = &["root", "calico*"];

/// Characters of user and group names (POSIX portable names, plus `.`).
fn account_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.".contains(c)
}

/// Checks the account `name` a manifest names against `patterns` (`what` is "allowed_owners"
/// or "allowed_groups", for the message).
pub fn check_account(patterns: &[String], what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 32 || !name.chars().all(account_char) {
        return Err("not a user or group name (1 to 32 of a-z, A-Z, 0-9, `-`, `_`, `.`)".into());
    }
    if !patterns.iter().any(|p| super::glob_match(p, name)) {
        return Err(format!("does not match {what} [{}]", patterns.join(", ")));
    }
    Ok(())
}

/// Checks an `allowed_owners` or `allowed_groups` pattern: name characters, `*` and `?`.
pub fn check_account_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || !pattern.chars().all(|c| account_char(c) || "*?".contains(c)) {
        return Err(format!(
            "`{pattern}` is not an account pattern: name characters, `*` and `?`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn root_and_calico_accounts_pass_by_default() {
        let owners = defaults(DEFAULT_ALLOWED_OWNERS);
        let groups = defaults(DEFAULT_ALLOWED_GROUPS);
        assert_eq!(check_account(&owners, "allowed_owners", "root"), Ok(()));
        assert_eq!(
            check_account(&groups, "allowed_groups", "calico-admins"),
            Ok(())
        );
    }

    #[test]
    fn other_accounts_and_odd_names_are_refused() {
        let groups = defaults(DEFAULT_ALLOWED_GROUPS);
        for name in [
            "users",
            "www-data",
            "0",
            "",
            "root\n",
            "../root",
            &"c".repeat(33),
        ] {
            assert!(
                check_account(&groups, "allowed_groups", name).is_err(),
                "{name:?} accepted"
            );
        }
        let why = check_account(&groups, "allowed_groups", "users").unwrap_err();
        assert!(why.contains("allowed_groups [root, calico*]"), "{why}");
    }

    #[test]
    fn patterns_are_account_names_with_wildcards() {
        assert_eq!(check_account_pattern("calico-*"), Ok(()));
        assert!(check_account_pattern("a/b").is_err());
        assert!(check_account_pattern("").is_err());
    }
}
