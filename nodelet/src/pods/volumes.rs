//! Volumes (emptyDir, hostPath, configMap, secret) and env (value, valueFrom) of a container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Volume};
use kube::api::Api;

use super::atomic_writer::{self, File, Payload, DEFAULT_MODE};
use super::spec::{self, bind};
use crate::cri::types as cri;
use crate::{Config, Error};

/// Reads the ConfigMaps and Secrets a pod refers to.
pub struct Sources<'a> {
    pub client: &'a kube::Client,
    pub namespace: &'a str,
}

impl Sources<'_> {
    async fn config_map(&self, name: &str) -> Result<Option<ConfigMap>, Error> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), self.namespace);
        api.get_opt(name)
            .await
            .map_err(|e| Error::api(format!("get configmap {}/{name}", self.namespace), e))
    }

    async fn secret(&self, name: &str) -> Result<Option<Secret>, Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
        api.get_opt(name)
            .await
            .map_err(|e| Error::api(format!("get secret {}/{name}", self.namespace), e))
    }
}

fn missing(pod: &Pod, what: String) -> Error {
    Error::Pod {
        pod: format!("{}/{}", spec::namespace(pod), spec::name(pod)),
        reason: what,
    }
}

/// Prepares every volume of the pod on the host; returns name → host path.
pub async fn prepare(
    config: &Config,
    pod: &Pod,
    src: &Sources<'_>,
) -> Result<BTreeMap<String, PathBuf>, Error> {
    let mut out = BTreeMap::new();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for v in &volumes {
        let dir = spec::pod_dir(config, pod).join("volumes").join(&v.name);
        let path = prepare_one(pod, v, &dir, src).await?;
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

async fn prepare_one(
    pod: &Pod,
    v: &Volume,
    dir: &Path,
    src: &Sources<'_>,
) -> Result<PathBuf, Error> {
    let mkdir =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| Error::io("create volume dir", p, e));
    if let Some(h) = &v.host_path {
        let p = PathBuf::from(&h.path);
        if matches!(h.type_.as_deref(), Some("DirectoryOrCreate")) {
            mkdir(&p)?;
        }
        return Ok(p);
    }
    if let Some(payload) = payload(pod, v, src).await? {
        atomic_writer::write(dir, &payload)?;
        return Ok(dir.to_path_buf());
    }
    // emptyDir and anything unsupported get a fresh directory under the pod dir.
    mkdir(dir)?;
    Ok(dir.to_path_buf())
}

/// Re-projects the pod's configMap and secret volumes so running containers see the current
/// data and removed keys disappear (the kubelet re-runs their SetUp on each pod sync).
/// Returns the volumes whose files changed; the first error once every volume was tried,
/// a failed volume keeping its old files as the kubelet's do.
pub async fn refresh(config: &Config, pod: &Pod, src: &Sources<'_>) -> Result<Vec<String>, Error> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref());
    let mut changed = Vec::new();
    let mut first_err = None;
    for v in volumes.unwrap_or_default() {
        let dir = spec::pod_dir(config, pod).join("volumes").join(&v.name);
        let wrote = match payload(pod, v, src).await {
            Ok(Some(p)) => atomic_writer::write(&dir, &p),
            Ok(None) => continue,
            Err(e) => Err(e),
        };
        match wrote {
            Ok(true) => changed.push(v.name.clone()),
            Ok(false) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(changed), Err)
}

/// The files of a configMap or secret volume; None for other volumes.
async fn payload(pod: &Pod, v: &Volume, src: &Sources<'_>) -> Result<Option<Payload>, Error> {
    if let Some(cm) = &v.config_map {
        let optional = cm.optional == Some(true);
        let data = match src.config_map(&cm.name).await? {
            Some(c) => {
                let text = c.data.unwrap_or_default().into_iter();
                let binary = c.binary_data.unwrap_or_default().into_iter();
                text.map(|(k, v)| (k, v.into_bytes()))
                    .chain(binary.map(|(k, b)| (k, b.0)))
                    .collect()
            }
            None if optional => BTreeMap::new(),
            None => return Err(missing(pod, format!("configmap {:?} not found", cm.name))),
        };
        let p = project(&data, cm.items.as_deref(), cm.default_mode, optional);
        return p
            .map(Some)
            .map_err(|why| missing(pod, format!("configmap {:?}: {why}", cm.name)));
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional == Some(true);
        let data = match src.secret(&name).await? {
            Some(sec) => {
                let mut d: BTreeMap<String, Vec<u8>> = sec
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                for (k, v) in sec.string_data.unwrap_or_default() {
                    d.insert(k, v.into_bytes());
                }
                d
            }
            None if optional => BTreeMap::new(),
            None => return Err(missing(pod, format!("secret {name:?} not found"))),
        };
        let p = project(&data, s.items.as_deref(), s.default_mode, optional);
        return p
            .map(Some)
            .map_err(|why| missing(pod, format!("secret {name:?}: {why}")));
    }
    Ok(None)
}

/// Keys (or the listed items) → files, as the kubelet's MakePayload: an item's mode, else
/// defaultMode, else 0644; a listed key that does not exist fails the volume unless it is
/// optional.
fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Payload, String> {
    let mode = |m: Option<i32>| {
        m.or(default_mode)
            .map_or(DEFAULT_MODE, |m| m as u32 & 0o777)
    };
    let files: Vec<(String, &Vec<u8>, u32)> = match items {
        Some(items) => {
            let mut out = Vec::new();
            for i in items {
                match data.get(&i.key) {
                    Some(d) => out.push((i.path.clone(), d, mode(i.mode))),
                    None if optional => {}
                    None => return Err(format!("references non-existent key {:?}", i.key)),
                }
            }
            out
        }
        None => data
            .iter()
            .map(|(k, v)| (k.clone(), v, mode(None)))
            .collect(),
    };
    let mut payload = Payload::new();
    for (path, data, mode) in files {
        if !atomic_writer::valid_path(&path) {
            return Err(format!("invalid path {path:?}"));
        }
        let file = File {
            data: data.clone(),
            mode,
        };
        payload.insert(path, file);
    }
    Ok(payload)
}

/// The container's mounts: configMap/secret read-only as Kubernetes mounts them.
pub fn mounts(pod: &Pod, c: &Container, host: &BTreeMap<String, PathBuf>) -> Vec<cri::Mount> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(path) = host.get(&m.name) else {
            continue;
        };
        let v = volumes.iter().find(|v| v.name == m.name);
        let forced_ro = v.is_some_and(|v| v.config_map.is_some() || v.secret.is_some());
        let mut p = path.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            p = p.join(sub);
        }
        out.push(bind(
            &p,
            &m.mount_path,
            forced_ro || m.read_only == Some(true),
        ));
    }
    out
}

/// Resolves env: value, $(VAR) expansion of earlier values, and valueFrom.
pub async fn env(
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
    src: &Sources<'_>,
    services: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, Error> {
    // The Service variables come first, so `$(VAR)` can refer to them and the pod's own
    // variables replace them (kubelet's makeEnvironmentVariables).
    let mut out: Vec<(String, String)> = services;
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &out)
        } else if let Some(from) = &e.value_from {
            if let Some(r) = &from.config_map_key_ref {
                let cm = src.config_map(&r.name).await?;
                match cm.and_then(|c| c.data).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(missing(
                            pod,
                            format!("configmap key {}/{} not found", r.name, r.key),
                        ))
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                let s = src.secret(&r.name).await?;
                match s.and_then(|s| s.data).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(missing(
                            pod,
                            format!("secret key {}/{} not found", r.name, r.key),
                        ))
                    }
                }
            } else if let Some(f) = &from.field_ref {
                field(pod, &f.field_path, pod_ip)
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        out.retain(|(k, _)| k != &e.name);
        out.push((e.name.clone(), value));
    }
    Ok(out)
}

fn field(pod: &Pod, path: &str, pod_ip: &str) -> String {
    match path {
        "metadata.name" => spec::name(pod).into(),
        "metadata.namespace" => spec::namespace(pod).into(),
        "metadata.uid" => spec::uid(pod).into(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => pod_ip.into(),
        "status.hostIP" => pod
            .status
            .as_ref()
            .and_then(|s| s.host_ip.clone())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// `$(VAR)` references to earlier variables expand; `$$(VAR)` escapes (Kubernetes expansion).
fn expand(v: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some(body) = tail.strip_prefix("$(") {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, val)) => out.push_str(val),
                        None => out.push_str(&tail[..end + 3]),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str(tail);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(kv: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
            ..Default::default()
        }
    }

    #[test]
    fn projection_of_keys_and_items() {
        let d = data(&[("a", "1"), ("b", "2")]);
        let all = project(&d, None, None, false).unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(all["a"].mode, 0o644);
        let some = project(
            &d,
            Some(&[item("b", "x/y", Some(0o400))]),
            Some(0o600),
            false,
        );
        let some = some.unwrap();
        assert_eq!(some.keys().collect::<Vec<_>>(), ["x/y"]);
        assert_eq!(
            (some["x/y"].data.as_slice(), some["x/y"].mode),
            (&b"2"[..], 0o400)
        );
        let dflt = project(&d, None, Some(0o600), false).unwrap();
        assert_eq!(dflt["b"].mode, 0o600);
        // A listed key that does not exist fails the volume unless it is optional.
        assert!(project(&d, Some(&[item("zz", "z", None)]), None, false).is_err());
        let opt = project(&d, Some(&[item("zz", "z", None)]), None, true).unwrap();
        assert!(opt.is_empty());
        assert!(project(&d, Some(&[item("a", "../escape", None)]), None, false).is_err());
    }

    #[test]
    fn expansion() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(super::expand("$(A)-$(B)-$$(A)", &env), "x-$(B)-$(A)");
    }
}
