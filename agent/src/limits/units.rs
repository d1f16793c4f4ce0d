//! Units a manifest may restart: `.service` units matching `allowed_units`, never calseg's
//! own and never a target, whatever agent.toml says.

use super::Limits;

/// Prefix of calseg's own units (`calseg-agent.service`, `calseg-server.service`): restarting
/// them from a manifest would let the server restart or stop its own guard.
const OWN_PREFIX: &str = "calseg-";

fn unit_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ":-_.@\\".contains(c)
}

/// Checks a unit named in a manifest's `restart` list against `limits`.
pub fn check_unit(limits: &Limits, unit: &str) -> Result<(), String> {
    if unit.is_empty() || unit.len() > 255 || !unit.chars().all(unit_char) {
        return Err("not a systemd unit name".into());
    }
    if !unit.ends_with(".service") {
        return Err("only .service units may be restarted (never a target or another type)".into());
    }
    if unit.starts_with(OWN_PREFIX) {
        return Err("calseg never restarts its own units".into());
    }
    if !limits.allowed_units.iter().any(|p| glob_match(p, unit)) {
        return Err(format!(
            "does not match allowed_units [{}]",
            limits.allowed_units.join(", ")
        ));
    }
    Ok(())
}

/// Checks an `allowed_units` pattern: unit name characters plus `*` and `?`, ending in
/// `.service`.
pub fn check_unit_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || !pattern.chars().all(|c| unit_char(c) || "*?".contains(c)) {
        return Err(format!(
            "`{pattern}` is not a unit pattern: unit name characters, `*` and `?`"
        ));
    }
    if !pattern.ends_with(".service") {
        return Err(format!(
            "`{pattern}` must end in `.service`: only services are ever restarted"
        ));
    }
    Ok(())
}

/// Whether `name` matches `pattern` as a whole: `*` is any run of characters (also none),
/// `?` exactly one; everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // The last `*` seen and the name position it was tried at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}
