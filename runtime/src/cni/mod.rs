//! CNI (container network interface, spec 1.0): runs the installed plugins on a pod's network
//! namespace, as libcni does for containerd — each plugin of the network's conf list exec'd with
//! `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_PATH` in its environment and
//! its config (with `name`, `cniVersion`, `prevResult` and `runtimeConfig`) on stdin.
//!
//! The conf dir's first `*.conflist` (or `*.conf`, by file name order, like libcni) is the pod
//! network. When the dir holds none, [`Cni::load_or_default`] writes a bridge + host-local +
//! portmap conf list whose network, bridge and subnet come from the runtime's flags, so two
//! runtimes on one machine do not share a bridge or an IPAM store. The loopback interface is
//! brought up by the sandbox itself (see `sandbox`), saving one plugin exec per pod.

mod conf_dir;
pub use conf_dir::ConfDir;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

pub const CNI_VERSION: &str = "1.0.0";

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid cni config {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("cni plugin {plugin} {command} for {container}: {message}")]
    Plugin {
        plugin: String,
        command: &'static str,
        container: String,
        message: String,
    },
}

/// What a default network looks like (from the runtime's flags).
#[derive(Debug, Clone)]
pub struct DefaultNetwork {
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    /// host-local's allocation store; kept under the runtime root so instances never share it.
    pub ipam_dir: PathBuf,
}

/// The pod network: a conf list and where its plugins are.
#[derive(Debug, Clone)]
pub struct Cni {
    pub bin_dir: PathBuf,
    pub conf_path: PathBuf,
    name: String,
    version: String,
    plugins: Vec<Value>,
}

/// What ADD returned that the runtime needs.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The pod's first IPv4 address, without prefix length.
    pub ip: Option<String>,
    /// The final result, handed back to the plugins as `prevResult` on DEL.
    pub result: Value,
}

/// The default conf list: bridge (gateway on the bridge, hairpin for pod → own service IP) with
/// host-local IPAM, then portmap for hostPort mappings.
pub fn default_conflist(net: &DefaultNetwork) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": net.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": net.subnet }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": net.ipam_dir,
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    })
}

impl Cni {
    /// Loads the conf dir's first network, writing the default one first when there is none.
    pub fn load_or_default(
        bin_dir: &Path,
        conf_dir: &Path,
        default: &DefaultNetwork,
    ) -> Result<Cni, CniError> {
        std::fs::create_dir_all(conf_dir).map_err(|source| CniError::Io {
            what: "create",
            path: conf_dir.into(),
            source,
        })?;
        let path = match first_config(conf_dir)? {
            Some(path) => path,
            None => {
                let path = conf_dir.join(format!("10-{}.conflist", default.name));
                let text = serde_json::to_string_pretty(&default_conflist(default))
                    .expect("json serializes");
                std::fs::write(&path, text).map_err(|source| CniError::Io {
                    what: "write",
                    path: path.clone(),
                    source,
                })?;
                path
            }
        };
        Cni::load(bin_dir, &path)
    }

    /// Parses a `.conflist`, or a single-plugin `.conf`.
    pub fn load(bin_dir: &Path, path: &Path) -> Result<Cni, CniError> {
        let bad = |reason: String| CniError::BadConfig {
            path: path.into(),
            reason,
        };
        let text = std::fs::read(path).map_err(|source| CniError::Io {
            what: "read",
            path: path.into(),
            source,
        })?;
        let conf: Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        let name = conf["name"]
            .as_str()
            .ok_or_else(|| bad("no \"name\"".into()))?
            .to_string();
        let version = conf["cniVersion"]
            .as_str()
            .unwrap_or(CNI_VERSION)
            .to_string();
        let plugins = match conf.get("plugins") {
            Some(Value::Array(list)) => list.clone(),
            Some(_) => return Err(bad("\"plugins\" is not a list".into())),
            None => vec![conf.clone()],
        };
        if plugins.iter().any(|p| p["type"].as_str().is_none()) {
            return Err(bad("a plugin has no \"type\"".into()));
        }
        Ok(Cni {
            bin_dir: bin_dir.into(),
            conf_path: path.into(),
            name,
            version,
            plugins,
        })
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// ADD: every plugin in order, each given the previous one's result. `port_mappings` is
    /// the `portMappings` runtime config (CNI CONVENTIONS.md); a plugin asking for that
    /// capability is skipped when there are none, since it would have nothing to do.
    pub fn add(
        &self,
        container: &str,
        netns: &Path,
        port_mappings: &[Value],
    ) -> Result<Attachment, CniError> {
        let mut prev: Option<Value> = None;
        for plugin in self.active_plugins(port_mappings) {
            let conf = self.plugin_conf(plugin, prev.as_ref(), port_mappings);
            let out = self.exec(plugin, "ADD", container, netns, &conf)?;
            prev = Some(serde_json::from_slice(&out).map_err(|e| CniError::Plugin {
                plugin: plugin_type(plugin).into(),
                command: "ADD",
                container: container.into(),
                message: format!("invalid result: {e}"),
            })?);
        }
        let result = prev.unwrap_or(Value::Null);
        Ok(Attachment {
            ip: first_ipv4(&result),
            result,
        })
    }

    /// DEL: every plugin in reverse order with the ADD result; a missing netns is fine (the
    /// plugins then release only their IPAM and host-side state).
    pub fn del(
        &self,
        container: &str,
        netns: &Path,
        attachment: &Attachment,
        port_mappings: &[Value],
    ) -> Result<(), CniError> {
        let prev = (!attachment.result.is_null()).then_some(&attachment.result);
        for plugin in self.active_plugins(port_mappings).rev() {
            let conf = self.plugin_conf(plugin, prev, port_mappings);
            self.exec(plugin, "DEL", container, netns, &conf)?;
        }
        Ok(())
    }

    fn active_plugins<'a>(
        &'a self,
        port_mappings: &'a [Value],
    ) -> impl DoubleEndedIterator<Item = &'a Value> {
        self.plugins.iter().filter(move |p| {
            let wants_ports = p["capabilities"]["portMappings"].as_bool() == Some(true);
            !wants_ports || !port_mappings.is_empty()
        })
    }

    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>, port_mappings: &[Value]) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = json!(self.name);
        conf["cniVersion"] = json!(self.version);
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        if plugin["capabilities"]["portMappings"].as_bool() == Some(true) {
            conf["runtimeConfig"] = json!({ "portMappings": port_mappings });
        }
        conf
    }

    fn exec(
        &self,
        plugin: &Value,
        command: &'static str,
        container: &str,
        netns: &Path,
        conf: &Value,
    ) -> Result<Vec<u8>, CniError> {
        let kind = plugin_type(plugin);
        let fail = |message: String| CniError::Plugin {
            plugin: kind.into(),
            command,
            container: container.into(),
            message,
        };
        let mut child = Command::new(self.bin_dir.join(kind))
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.bin_dir)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("exec {}: {e}", self.bin_dir.join(kind).display())))?;
        let input = serde_json::to_vec(conf).expect("json serializes");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&input)
                .map_err(|e| fail(format!("write config: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(format!("wait: {e}")))?;
        if !out.status.success() {
            // Plugins report errors as a JSON object {code, msg, details} on stdout.
            let err: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let msg = match err["msg"].as_str() {
                Some(msg) => format!("{msg} {}", err["details"].as_str().unwrap_or("")),
                None => format!(
                    "{} {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            };
            return Err(fail(msg.trim().to_string()));
        }
        Ok(out.stdout)
    }
}

fn plugin_type(plugin: &Value) -> &str {
    plugin["type"].as_str().unwrap_or("")
}

fn first_config(dir: &Path) -> Result<Option<PathBuf>, CniError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CniError::Io {
        what: "read",
        path: dir.into(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    Ok(files.into_iter().next())
}

/// The first IPv4 address of a CNI result (`ips[].address`, "10.88.0.5/16" → "10.88.0.5").
pub fn first_ipv4(result: &Value) -> Option<String> {
    result["ips"].as_array()?.iter().find_map(|ip| {
        let addr = ip["address"].as_str()?.split('/').next()?;
        addr.parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|a| a.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_ipv4_skips_ipv6() {
        let r = json!({"ips": [{"address": "fd00::5/64"}, {"address": "10.88.0.5/16"}]});
        assert_eq!(first_ipv4(&r).as_deref(), Some("10.88.0.5"));
    }

    #[test]
    fn default_config_is_written_and_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let net = DefaultNetwork {
            name: "t".into(),
            bridge: "mk8s-t".into(),
            subnet: "10.88.7.0/24".into(),
            ipam_dir: tmp.path().join("ipam"),
        };
        let cni = Cni::load_or_default(Path::new("/usr/lib/cni"), tmp.path(), &net).unwrap();
        assert_eq!(cni.name(), "t");
        assert_eq!(cni.plugins.len(), 2);
        // portmap only runs when there are mappings.
        assert_eq!(cni.active_plugins(&[]).count(), 1);
        assert_eq!(cni.active_plugins(&[json!({"hostPort": 80})]).count(), 2);
    }
}
