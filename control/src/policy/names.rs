//! etcd user names of identities (= certificate CNs): the one function that renders them
//! ([`Policy::etcd_user`]), its inverse ([`Policy::owner_of`]), the enrollment generation that
//! makes a re-enrolled node's users new names, and the names calseg never renders.
//!
//! A user is the identity template with `{component}` and `{node}` filled in, and, once the node
//! was revoked, [`GENERATION_SEPARATOR`] `g` and the node's enrollment generation:
//! `calico-node.node2~g1`. The separator appears in no node name (RFC 1123), no component name
//! (`[a-z0-9-]`) and no template (refused), so every name has one reading, and a certificate
//! issued before a revocation names a user that never exists again.
//!
//! A component that declares `component_identity = true` also has one user for all its pods
//! ([`component_user`]): its name and [`COMPONENT_WIDE_SUFFIX`], `calico-kube-controllers~all`.
//! The suffix starts with the separator but not with `g`, so no node's user (template, node,
//! generation) can ever spell it, and [`Policy::owner_of`] reads no node in it.

use super::checks;
use super::model::Policy;

/// Separates a user's name from its node's enrollment generation.
pub const GENERATION_SEPARATOR: char = '~';

/// Ends the name of a component's component-wide user: `{component}~all`.
pub const COMPONENT_WIDE_SUFFIX: &str = "~all";

/// A certificate's Common Name (RFC 5280's ub-common-name) holds at most this many characters.
pub const MAX_COMMON_NAME: usize = 64;

/// The etcd user (= certificate CN) of `component`'s component-wide identity.
pub fn component_user(component: &str) -> String {
    format!("{component}{COMPONENT_WIDE_SUFFIX}")
}

/// etcd users calseg never signs for, whatever the policy says (`root` is etcd's superuser).
/// calseg's own etcd user is reserved too; the server knows it from `[etcd] cert_file`.
pub const RESERVED_USERS: &[&str] = &["root"];

/// The component, node and enrollment generation an etcd user name was made for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    pub component: String,
    pub node: String,
    pub generation: u32,
}

/// `template` with `{component}` and `{node}` filled in, plus the generation suffix when
/// `generation` > 0.
pub(super) fn render(template: &str, component: &str, node: &str, generation: u32) -> String {
    let base = template
        .replace("{component}", component)
        .replace("{node}", node);
    if generation == 0 {
        base
    } else {
        format!("{base}{GENERATION_SEPARATOR}g{generation}")
    }
}

impl Policy {
    /// The etcd user (= certificate CN) of `component` on `node` in the node's enrollment
    /// `generation`. Everything that names a user (desired RBAC, manifests, signing, the
    /// access checker) goes through here.
    pub fn etcd_user(&self, component: &str, node: &str, generation: u32) -> String {
        render(&self.identity.user_template, component, node, generation)
    }

    /// Which component, node and generation `user` stands for under this policy's template, if
    /// any. When several components match (only with templates like `{component}-{node}`), the
    /// longest component name wins: `calico-node-w1` is calico-node on `w1`.
    pub fn owner_of(&self, user: &str) -> Option<Owner> {
        owner_in(
            &self.identity.user_template,
            self.components.keys().map(String::as_str),
            user,
        )
    }

    /// The component-wide etcd user of `component`, when the policy declares one for it
    /// (`component_identity = true`).
    pub fn component_user(&self, component: &str) -> Option<String> {
        self.components
            .get(component)
            .filter(|c| c.component_identity)
            .map(|c| component_user(&c.name))
    }

    /// Refuses a policy whose template can render one of `reserved` (besides
    /// [`RESERVED_USERS`], which validation already refuses), e.g. calseg's own etcd user, or
    /// whose component-wide users include one.
    pub fn check_reserved_users(&self, reserved: &[String]) -> Result<(), String> {
        for name in reserved {
            if let Some(owner) = self.owner_of(name) {
                return Err(reserved_message(&self.identity.user_template, name, &owner));
            }
            if let Some(component) = self
                .components
                .keys()
                .find(|c| self.component_user(c).as_deref() == Some(name.as_str()))
            {
                return Err(format!(
                    "the component-wide identity of component {component} is the reserved etcd \
                     user {name:?} (calseg's own etcd user): rename the component or give calseg \
                     another etcd user"
                ));
            }
        }
        Ok(())
    }
}

/// The error for a template that renders the reserved `name` for `owner`.
pub(super) fn reserved_message(template: &str, name: &str, owner: &Owner) -> String {
    format!(
        "identity user {template:?} renders the reserved etcd user {name:?} (component {}, node \
         {}): an identity template must contain {{component}} and {{node}}, no '~', and render \
         no user calseg does not own (root, calseg's own etcd user); e.g. \"{{component}}.{{node}}\"",
        owner.component, owner.node
    )
}

/// [`Policy::owner_of`] on a bare template and component names.
pub(super) fn owner_in<'a>(
    template: &str,
    components: impl Iterator<Item = &'a str>,
    user: &str,
) -> Option<Owner> {
    let (base, generation) = split_generation(user)?;
    let mut found: Vec<Owner> = components
        .filter_map(|component| {
            let node = node_in(&template.replace("{component}", component), base)?;
            Some(Owner {
                component: component.to_owned(),
                node,
                generation,
            })
        })
        .collect();
    found.sort_by_key(|o| (std::cmp::Reverse(o.component.len()), o.component.clone()));
    found.into_iter().next()
}

/// `user` without its generation suffix, and the generation (0 without one). `None` when the
/// suffix is not the canonical `~g<N>` with N > 0 and no leading zero.
fn split_generation(user: &str) -> Option<(&str, u32)> {
    let Some((base, suffix)) = user.split_once(GENERATION_SEPARATOR) else {
        return Some((user, 0));
    };
    let digits = suffix.strip_prefix('g')?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    let generation: u32 = digits.parse().ok().filter(|_| canonical)?;
    Some((base, generation))
}

/// The node name `N` for which `template` (with `{node}` placeholders only) spells `user`, if
/// it is a valid node name.
fn node_in(template: &str, user: &str) -> Option<String> {
    let parts: Vec<&str> = template.split("{node}").collect();
    let holes = parts.len().checked_sub(1).filter(|&n| n > 0)?;
    let fixed: usize = parts.iter().map(|p| p.len()).sum();
    let spare = user.len().checked_sub(fixed)?;
    if spare == 0 || spare % holes != 0 {
        return None;
    }
    let start = parts.first()?.len();
    let node = user.get(start..start + spare / holes)?;
    (template.replace("{node}", node) == user && checks::node_name(node).is_ok())
        .then(|| node.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn owner(component: &str, node: &str, generation: u32) -> Option<Owner> {
        Some(Owner {
            component: component.into(),
            node: node.into(),
            generation,
        })
    }

    #[test]
    fn generations_render_a_suffix_and_read_back() {
        let t = "{component}.{node}";
        assert_eq!(render(t, "calico-node", "node2", 0), "calico-node.node2");
        assert_eq!(render(t, "calico-node", "node2", 2), "calico-node.node2~g2");
        let comps = || ["calico-node", "calico"].into_iter();
        assert_eq!(
            owner_in(t, comps(), "calico-node.node2~g2"),
            owner("calico-node", "node2", 2)
        );
        assert_eq!(
            owner_in(t, comps(), "calico-node.node2"),
            owner("calico-node", "node2", 0)
        );
        for odd in [
            "calico-node.node2~g0",
            "calico-node.node2~g02",
            "calico-node.node2~g",
            "calico-node.node2~2",
            "calico-node.node2~g1~g2",
            "calico-node.node2~g99999999999",
        ] {
            assert_eq!(owner_in(t, comps(), odd), None, "{odd}");
        }
    }

    #[test]
    fn a_bare_node_template_renders_root() {
        let found = owner_in("{node}", ["a"].into_iter(), "root");
        assert_eq!(found, owner("a", "root", 0));
        assert_eq!(
            owner_in("{component}.{node}", ["a"].into_iter(), "root"),
            None
        );
        // Component and node glued together can spell it too.
        assert_eq!(
            owner_in("{component}{node}", ["ro"].into_iter(), "root"),
            owner("ro", "ot", 0)
        );
    }
}
