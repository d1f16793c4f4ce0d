//! Identity sets: the files of one etcd identity, switched together by one rename of
//! `<dir>/.calseg/current` (see the module doc of [`super`] and [`layout`]).

mod layout;

use super::error::InstallError;
use super::fsops::{Ids, create_new, fsync_dir, remove_if_exists};
use super::plan::{PlannedChange, compare};
use super::{FileSpec, Hook, InstallReceipt, Root, step};
use layout::{DIR_MODE, Layout, STATE, Stable};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What [`install_set`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetReceipt {
    /// Manifest path of the identity directory.
    pub dir: PathBuf,
    /// The generation now current.
    pub generation: u64,
    /// The generation rollback returns to; `None` if there was nothing before or no backup.
    pub previous: Option<u64>,
    /// Stable names this install created (removed again by rolling back a first install).
    pub links_created: Vec<String>,
    /// False when every file was already exactly as specified (nothing was written).
    pub changed: bool,
    pub backup: bool,
}

/// A validated set: one directory, distinct plain names, one group.
struct Prepared<'a> {
    dir: PathBuf,
    layout: Layout,
    entries: Vec<(&'a FileSpec, String, Ids)>,
    dir_ids: Ids,
}

fn prepare<'a>(root: &Root, specs: &'a [FileSpec]) -> Result<Prepared<'a>, InstallError> {
    let first = specs.first().ok_or_else(|| InstallError::BadSet {
        path: PathBuf::from("/"),
        reason: "no files given".into(),
    })?;
    let dir = first.path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let bad = |reason: String| InstallError::BadSet {
        path: dir.clone(),
        reason,
    };
    let mut entries = Vec::with_capacity(specs.len());
    for spec in specs {
        root.resolve(&spec.path)?;
        if spec.path.parent() != Some(dir.as_path()) {
            let why = format!("{} is not in this directory", spec.path.display());
            return Err(bad(format!(
                "{why}; all files of one identity share a directory"
            )));
        }
        let name = spec.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.is_empty() || name.starts_with('.') {
            return Err(bad(format!(
                "file name `{name}` must be UTF-8 and not start with `.`"
            )));
        }
        if entries.iter().any(|(_, n, _)| n == name) {
            return Err(bad(format!("`{name}` is listed twice")));
        }
        entries.push((spec, name.to_owned(), Ids::of(spec)?));
    }
    let dir_ids = entries[0].2;
    if entries.iter().any(|(_, _, ids)| ids.gid != dir_ids.gid) {
        let why = "files have different groups; use the one group the Calico service runs in";
        return Err(bad(format!("{why}, so it can traverse the 0750 directory")));
    }
    if root.check_dirs(&dir)? {
        root.check_dirs(&dir.join(STATE))?;
    }
    let layout = Layout::new(root.resolve(&dir)?);
    Ok(Prepared {
        dir,
        layout,
        entries,
        dir_ids,
    })
}

fn plan_prepared(p: &Prepared<'_>) -> Result<Vec<PlannedChange>, InstallError> {
    let current = p.layout.current()?;
    let mut plans = Vec::with_capacity(p.entries.len());
    for (spec, name, ids) in &p.entries {
        let existing = p.layout.read_visible(name, current)?;
        plans.push(compare(spec, *ids, existing.as_ref()));
    }
    Ok(plans)
}

/// Dry run: would [`install_set`] change each file? Touches nothing.
pub fn plan_set(root: &Root, specs: &[FileSpec]) -> Result<Vec<PlannedChange>, InstallError> {
    plan_prepared(&prepare(root, specs)?)
}

/// Installs the files of one identity (all in one directory, one group) so that the stable
/// paths switch from the old set to the new one in a single rename. With `backup`, the
/// previous generation is kept for [`super::rollback`].
pub fn install_set(
    root: &Root,
    specs: &[FileSpec],
    backup: bool,
) -> Result<InstallReceipt, InstallError> {
    install_set_with(root, specs, backup, &mut || Ok(()))
}

pub(crate) fn install_set_with(
    root: &Root,
    specs: &[FileSpec],
    backup: bool,
    mut hook: Hook<'_>,
) -> Result<InstallReceipt, InstallError> {
    let p = prepare(root, specs)?;
    let lay = &p.layout;
    let names = || p.entries.iter().map(|(_, name, _)| name.as_str());
    let mut receipt = SetReceipt {
        dir: p.dir.clone(),
        generation: 0,
        previous: None,
        links_created: Vec::new(),
        changed: false,
        backup,
    };
    let unchanged = plan_prepared(&p)?.iter().all(|plan| !plan.changes());
    let states = names()
        .map(|n| lay.stable(n))
        .collect::<Result<Vec<_>, _>>()?;
    // Identical contents, mode and owner: nothing to do, even for regular files not yet
    // adopted (they are adopted at the next real change, so no restart is caused).
    if unchanged {
        receipt.generation = lay.current()?.unwrap_or(0);
        return Ok(InstallReceipt::Set(receipt));
    }
    root.ensure_dir(&p.dir, Some((DIR_MODE, p.dir_ids)))?;
    root.ensure_dir(&p.dir.join(STATE), Some((DIR_MODE, p.dir_ids)))?;

    // Debris of an interrupted install: generations newer than current, temp links.
    let mut current = lay.current()?;
    let gens = lay.generations()?;
    let below = current.and_then(|c| gens.iter().copied().filter(|g| *g < c).max());
    lay.prune(&[current, below].into_iter().flatten().collect::<Vec<_>>())?;
    for name in names() {
        lay.remove_link_tmp(name)?;
    }

    // Adopt regular files: snapshot what readers see into a generation, then swap each file
    // for a link with identical contents.
    if states.contains(&Stable::Regular) {
        let adopted = next_generation(lay)?;
        let gen_dir = lay.make_generation(adopted, p.dir_ids)?;
        for name in names() {
            if let Some(old) = lay.read_visible(name, current)? {
                create_new(&gen_dir.join(name), &old.contents, old.mode, old.ids)?;
                step(&mut hook, &gen_dir.join(name))?;
            }
        }
        publish(lay, &gen_dir, adopted, &mut hook)?;
        current = Some(adopted);
        for (name, _) in names().zip(&states).filter(|(_, s)| **s == Stable::Regular) {
            lay.link(name)?;
            step(&mut hook, &lay.dir.join(name))?;
        }
    }
    for (name, _) in names().zip(&states).filter(|(_, s)| **s == Stable::Missing) {
        lay.link(name)?;
        step(&mut hook, &lay.dir.join(name))?;
        receipt.links_created.push(name.to_owned());
    }
    fsync_dir(&lay.dir)?;

    let generation = next_generation(lay)?;
    let gen_dir = lay.make_generation(generation, p.dir_ids)?;
    for (spec, name, ids) in &p.entries {
        create_new(&gen_dir.join(name), &spec.contents, spec.mode, *ids)?;
        step(&mut hook, &gen_dir.join(name))?;
    }
    publish(lay, &gen_dir, generation, &mut hook)?;

    receipt.previous = current.filter(|_| backup);
    lay.prune(
        &[Some(generation), receipt.previous]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
    )?;
    receipt.generation = generation;
    receipt.changed = true;
    Ok(InstallReceipt::Set(receipt))
}

fn next_generation(lay: &Layout) -> Result<u64, InstallError> {
    Ok(lay.generations()?.last().map_or(1, |n| n.saturating_add(1)))
}

/// Makes a written generation durable, then switches `current` to it.
fn publish(lay: &Layout, gen_dir: &Path, n: u64, hook: &mut Hook<'_>) -> Result<(), InstallError> {
    fsync_dir(gen_dir)?;
    fsync_dir(&lay.state)?;
    step(hook, gen_dir)?;
    lay.switch(n)?;
    step(hook, &lay.state)
}

/// Undoes [`install_set`]: `current` goes back to the previous generation in one rename and
/// the new one is removed; a first install is removed entirely.
pub(crate) fn rollback_set(root: &Root, receipt: &SetReceipt) -> Result<(), InstallError> {
    if !receipt.changed {
        return Ok(());
    }
    root.check_dirs(&receipt.dir.join(STATE))?;
    let lay = Layout::new(root.resolve(&receipt.dir)?);
    let no = |reason: String| InstallError::NoRollback {
        path: lay.state.clone(),
        reason,
    };
    let current = lay.current()?;
    if current != Some(receipt.generation) {
        let why = format!(
            "current generation is {current:?}, not {}",
            receipt.generation
        );
        return Err(no(format!(
            "{why}: another install ran since; re-run the agent"
        )));
    }
    let gens = lay.generations()?;
    match receipt.previous {
        Some(prev) if gens.contains(&prev) => lay.switch(prev)?,
        Some(prev) => return Err(no(format!("previous generation {prev} is gone"))),
        None if receipt.backup => {
            for name in &receipt.links_created {
                remove_if_exists(&lay.dir.join(name))?;
            }
            fsync_dir(&lay.dir)?;
            lay.remove_current()?;
        }
        None => return Err(no("installed without a backup".into())),
    }
    let keep: Vec<u64> = gens
        .into_iter()
        .filter(|g| *g != receipt.generation)
        .collect();
    lay.prune(&keep)
}

#[cfg(test)]
mod tests;
