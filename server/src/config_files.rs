//! Reading server.toml together with its drop-in directory, `server.toml.d/`: every `*.toml`
//! file there, in byte order of the names, is read after server.toml and overrides the keys it
//! sets (tables merge key by key; any other value replaces the one before). `init` writes its
//! generated settings there, so the packaged server.toml (a dpkg conffile) is never rewritten,
//! and operators add a later file (e.g. `90-site.toml`) rather than editing either.
//!
//! Each file is checked against the schema on its own first, so an unknown key or a wrong type
//! is reported with the file, line and column it is in.

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// At most this many drop-in files are read; more is certainly a mistake.
const MAX_DROP_INS: usize = 100;

/// The drop-in directory of a configuration file: `server.toml` → `server.toml.d`.
pub fn drop_in_dir(config: &Path) -> PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(".d");
    PathBuf::from(name)
}

/// The `*.toml` files of `dir` in the order they apply (none when `dir` does not exist).
/// Hidden files (editor swap files, `init`'s temporary files) are skipped.
pub fn drop_in_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("read {}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("read {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".toml") {
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    if files.len() > MAX_DROP_INS {
        bail!(
            "{}: {} files; at most {MAX_DROP_INS} are read",
            dir.display(),
            files.len()
        );
    }
    Ok(files)
}

/// Reads `path` (a missing file is empty unless `required`) and then its drop-ins, checks each
/// against `T`, and returns `T` read from all of them merged. `None` when no file exists.
pub fn load_merged<T: DeserializeOwned>(path: &Path, required: bool) -> Result<Option<T>> {
    let mut merged: Option<toml::Table> = match std::fs::read_to_string(path) {
        Ok(text) => Some(parse_checked::<T>(path, &text)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => None,
        Err(error) => return Err(error).with_context(|| format!("read {}", path.display())),
    };
    let drop_ins = drop_in_files(&drop_in_dir(path))?;
    for file in &drop_ins {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
        let table = parse_checked::<T>(file, &text)?;
        match merged.as_mut() {
            Some(base) => merge(base, table),
            None => merged = Some(table),
        }
    }
    let Some(merged) = merged else {
        return Ok(None);
    };
    let files = std::iter::once(path.display().to_string())
        .chain(drop_ins.iter().map(|f| f.display().to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    // Each file passed on its own; what is left is a combination, e.g. two files each setting
    // half of a pair. Name them all.
    let value = toml::Value::Table(merged);
    T::deserialize(value)
        .map(Some)
        .map_err(|error| anyhow::anyhow!("{files} together: {}", error.message()))
}

/// Parses one file as a table and checks it against `T` alone, with the error's place.
fn parse_checked<T: DeserializeOwned>(path: &Path, text: &str) -> Result<toml::Table> {
    let placed = |error: toml::de::Error| {
        let place = error
            .span()
            .map(|span| {
                let (line, column) = line_column(text, span.start);
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        anyhow::anyhow!("{}{place}: {}", path.display(), error.message())
    };
    toml::from_str::<T>(text).map_err(placed)?;
    toml::from_str::<toml::Table>(text).map_err(placed)
}

/// Merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => merge(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// The shape of server.toml these tests need, as strict as the real one.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ServerConfig {
        policy: Option<PathBuf>,
        state_dir: Option<PathBuf>,
        #[serde(default)]
        api: Api,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Api {
        listen: Option<String>,
        max_pending: Option<usize>,
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn drop_ins_override_in_name_order_and_tables_merge() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("server.toml");
        write(
            &main,
            "policy = \"/a\"\n[api]\nlisten = \"0.0.0.0:1\"\nmax_pending = 5\n",
        );
        let d = drop_in_dir(&main);
        write(&d.join("90-site.toml"), "[api]\nlisten = \"127.0.0.1:3\"\n");
        write(
            &d.join("50-init.toml"),
            "state_dir = \"/s\"\n[api]\nlisten = \"127.0.0.1:2\"\n",
        );
        write(&d.join(".50-init.toml.swp"), "garbage = [");
        write(&d.join("README"), "not toml");
        let config: ServerConfig = load_merged(&main, true).unwrap().unwrap();
        assert_eq!(config.policy, Some(PathBuf::from("/a")));
        assert_eq!(config.state_dir, Some(PathBuf::from("/s")));
        assert_eq!(config.api.listen.as_deref(), Some("127.0.0.1:3"));
        assert_eq!(config.api.max_pending, Some(5));
    }

    #[test]
    fn an_error_in_a_drop_in_names_that_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("server.toml");
        write(&main, "# all commented\n");
        write(
            &drop_in_dir(&main).join("50-init.toml"),
            "[api]\nlisten = \"x\"\nlistne = \"y\"\n",
        );
        let error = load_merged::<ServerConfig>(&main, true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("50-init.toml:3:1"), "{error}");
        assert!(error.contains("unknown field `listne`"), "{error}");
    }

    #[test]
    fn drop_ins_apply_without_a_main_file_unless_it_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("server.toml");
        assert!(load_merged::<ServerConfig>(&main, false).unwrap().is_none());
        write(&drop_in_dir(&main).join("a.toml"), "policy = \"/p\"\n");
        let config: ServerConfig = load_merged(&main, false).unwrap().unwrap();
        assert_eq!(config.policy, Some(PathBuf::from("/p")));
        assert!(load_merged::<ServerConfig>(&main, true).is_err());
    }
}
