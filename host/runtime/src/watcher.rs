//! Hot reload: watch `PLUGINS_DIR` and load new or changed plugins into the registry.
//!
//! Layout of the folder: `NAME.wasm` is the module, `NAME/*.toml` its content tables. A change to
//! either reloads `NAME`; removing `NAME.wasm` unloads it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use crate::engine::Runtime;
use crate::module::PluginSource;
use crate::registry::Registry;
use crate::{HostFailure, PluginError};

/// How long the watcher waits for a burst of file events to settle.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Which plugin a path belongs to: `dir/NAME.wasm` or `dir/NAME/anything`.
fn plugin_of(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let mut parts = rel.components();
    let first = parts.next()?.as_os_str().to_str()?;
    if parts.next().is_some() {
        return Some(first.to_owned());
    }
    first.strip_suffix(".wasm").map(str::to_owned)
}

/// Load (or unload) one plugin from `dir` and update the registry. Returns what happened.
pub async fn reload(
    runtime: &Runtime,
    registry: &Registry,
    dir: &Path,
    name: &str,
) -> Result<bool, PluginError> {
    if !dir.join(format!("{name}.wasm")).exists() {
        return Ok(registry.unload(name));
    }
    let source = match PluginSource::from_dir(dir, name) {
        Ok(s) => s,
        Err(e) => {
            registry.refuse(name, &e);
            return Err(e);
        }
    };
    match runtime.load(source).await {
        Ok(version) => {
            registry.publish(version);
            Ok(true)
        }
        Err(e) => {
            registry.refuse(name, &e);
            Err(e)
        }
    }
}

/// Load every `*.wasm` in `dir` once. Failures are recorded in the registry and logged.
pub async fn load_all(runtime: &Runtime, registry: &Registry, dir: &Path) -> usize {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".wasm"))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut loaded = 0;
    for name in names {
        if reload(runtime, registry, dir, &name).await.is_ok() {
            loaded += 1;
        }
    }
    loaded
}

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watch `dir` and reload plugins as their files change. Must be called inside a tokio runtime.
pub fn watch(runtime: Runtime, registry: Arc<Registry>, dir: PathBuf) -> Result<Watcher, PluginError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<BTreeSet<String>>();
    let watch_dir = dir.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| match result {
        Ok(events) => {
            // Reading a plugin's files (an upload reads its content tables, the admin API reads
            // the module) is not a change: inotify reports opens and closes as access events.
            let names: BTreeSet<String> = events
                .iter()
                .filter(|e| !e.kind.is_access())
                .flat_map(|e| e.paths.iter())
                .filter_map(|p| plugin_of(&watch_dir, p))
                .collect();
            if !names.is_empty() {
                let _ = tx.send(names);
            }
        }
        Err(errors) => {
            for e in errors {
                tracing::warn!("plugin watcher: {e}");
            }
        }
    })
    .map_err(|e| {
        PluginError::host(
            HostFailure::Internal,
            format!("cannot watch {}: {e}", dir.display()),
        )
    })?;
    debouncer.watch(&dir, RecursiveMode::Recursive).map_err(|e| {
        PluginError::host(
            HostFailure::Internal,
            format!("cannot watch {}: {e}", dir.display()),
        )
    })?;

    let task = tokio::spawn(async move {
        while let Some(mut names) = rx.recv().await {
            // Coalesce whatever else arrived meanwhile.
            while let Ok(more) = rx.try_recv() {
                names.extend(more);
            }
            for name in names {
                let _ = reload(&runtime, &registry, &dir, &name).await;
            }
        }
    });
    Ok(Watcher {
        _debouncer: debouncer,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_plugins() {
        let dir = Path::new("/p");
        assert_eq!(
            plugin_of(dir, Path::new("/p/alchemy.wasm")).as_deref(),
            Some("alchemy")
        );
        assert_eq!(
            plugin_of(dir, Path::new("/p/alchemy/recipes.toml")).as_deref(),
            Some("alchemy")
        );
        assert_eq!(plugin_of(dir, Path::new("/p/readme.txt")), None);
        assert_eq!(plugin_of(dir, Path::new("/elsewhere/x.wasm")), None);
    }
}
