//! The `etcd_*` fields of Calico's CNI network config (`/etc/cni/net.d/10-calico.conflist`):
//! set in every plugin of type `calico`, everything else kept in its order.

use super::{EtcdFiles, RenderError};
use serde_json::{Map, Value};

/// Rewrites a CNI config: in a conflist every `"type": "calico"` entry of `"plugins"`, in a
/// plain `.conf` the top-level object, gets `datastore_type`, `etcd_endpoints`,
/// `etcd_ca_cert_file`, `etcd_cert_file` and `etcd_key_file`. Existing keys keep their place,
/// new ones go last; all other content is kept with its key order (serde_json
/// `preserve_order`). The output is pretty-printed with a final newline, so re-rendering it
/// gives the same bytes.
pub fn cni_conflist(existing: &str, settings: &EtcdFiles) -> Result<String, RenderError> {
    settings.validate()?;
    let mut doc: Value = serde_json::from_str(existing).map_err(|e| RenderError::InvalidJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let Some(top) = doc.as_object_mut() else {
        return Err(RenderError::NoCalicoPlugin {
            where_: "(the document is not a JSON object)",
        });
    };
    let found = if let Some(plugins) = top.get_mut("plugins") {
        let Some(plugins) = plugins.as_array_mut() else {
            return Err(RenderError::NoCalicoPlugin {
                where_: "(\"plugins\" is not an array)",
            });
        };
        let mut found = 0;
        for plugin in plugins.iter_mut().filter_map(Value::as_object_mut) {
            if is_calico(plugin) {
                set_fields(plugin, settings);
                found += 1;
            }
        }
        found
    } else if is_calico(top) {
        set_fields(top, settings);
        1
    } else {
        0
    };
    if found == 0 {
        return Err(RenderError::NoCalicoPlugin {
            where_: "in \"plugins\" or at the top level",
        });
    }
    Ok(format!("{doc:#}\n"))
}

fn is_calico(object: &Map<String, Value>) -> bool {
    object.get("type").and_then(Value::as_str) == Some("calico")
}

fn set_fields(plugin: &mut Map<String, Value>, settings: &EtcdFiles) {
    let path = |p: &std::path::Path| Value::String(p.to_string_lossy().into_owned());
    plugin.insert("datastore_type".into(), "etcdv3".into());
    plugin.insert("etcd_endpoints".into(), settings.endpoints_joined().into());
    plugin.insert("etcd_ca_cert_file".into(), path(&settings.ca_file));
    plugin.insert("etcd_cert_file".into(), path(&settings.cert_file));
    plugin.insert("etcd_key_file".into(), path(&settings.key_file));
}

#[cfg(test)]
mod tests;
