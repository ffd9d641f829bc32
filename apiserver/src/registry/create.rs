//! Create: name generation, namespace existence, defaulting, initial status, identity
//! fields, validation, ClusterIP/NodePort allocation, then a create-if-absent write.

use minik8s_api::resource::{self, ResourceInfo};
use rand::Rng;
use serde_json::{json, Value};

use super::{encode, meta_str, now_rfc3339, subject, written, Registry, WriteOptions};
use crate::admission;
use crate::defaults;
use crate::status::{ApiError, Cause};
use crate::storage::StorageError;

/// Kubernetes' `SimpleNameGenerator`: 5 characters from an alphabet without vowels.
fn generate_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// How many names `generateName` tries before giving up with 409 (Kubernetes retries too).
const GENERATE_NAME_ATTEMPTS: usize = 8;

impl Registry {
    /// Creates `obj` in `ns` (the namespace of the URL). Returns the stored object.
    pub async fn create(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        admission::check_type(info, &mut obj)?;
        self.set_namespace(info, ns, &mut obj)?;
        let generate = meta_str(&obj, "generateName").map(String::from);
        let fixed_name = meta_str(&obj, "name")
            .filter(|n| !n.is_empty())
            .map(String::from);
        if fixed_name.is_none() && generate.as_deref().unwrap_or("").is_empty() {
            return Err(ApiError::Invalid {
                group: info.group.into(),
                subject_kind: info.kind.into(),
                name: String::new(),
                causes: vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            });
        }
        if info.namespaced {
            self.check_namespace_usable(obj["metadata"]["namespace"].as_str().unwrap_or(""))
                .await?;
        }
        self.prepare_for_create(info, &mut obj);
        for attempt in 0.. {
            if fixed_name.is_none() {
                let name = format!("{}{}", generate.as_deref().unwrap_or(""), generate_suffix());
                obj["metadata"]["name"] = json!(name);
            }
            admission::validate_create(info, &obj)?;
            match self.create_once(info, &mut obj, opts).await {
                Err(ApiError::AlreadyExists(_))
                    if fixed_name.is_none() && attempt + 1 < GENERATE_NAME_ATTEMPTS => {}
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }

    fn set_namespace(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("checked by check_type");
        if !info.namespaced {
            meta.remove("namespace");
            return Ok(());
        }
        let Some(ns) = ns else {
            return Err(ApiError::MethodNotAllowed);
        };
        match meta.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the \
                 request"
                    .into(),
            )),
            _ => {
                meta.insert("namespace".into(), json!(ns));
                Ok(())
            }
        }
    }

    /// The NamespaceLifecycle admission plugin: no objects in missing or terminating
    /// namespaces.
    pub async fn check_namespace_usable(&self, ns: &str) -> Result<(), ApiError> {
        let namespaces = resource::find("", "v1", "namespaces").expect("in table");
        let nsobj = match self.get(namespaces, None, ns).await {
            Ok(o) => o,
            Err(ApiError::NotFound(_)) => {
                return Err(ApiError::NotFound(subject(namespaces, ns)));
            }
            Err(e) => return Err(e),
        };
        if nsobj
            .get("metadata")
            .and_then(|m| m.get("deletionTimestamp"))
            .is_some()
            || nsobj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        {
            return Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }

    /// Kubernetes' PrepareForCreate + defaulting + admission defaults.
    fn prepare_for_create(&self, info: &ResourceInfo, obj: &mut Value) {
        {
            let meta = obj["metadata"]
                .as_object_mut()
                .expect("checked by check_type");
            for f in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                meta.remove(f);
            }
            meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        }
        defaults::apply(info.kind, obj);
        if info.kind == "Pod" {
            defaults::add_default_tolerations(&mut obj["spec"], &self.defaults);
        }
        if obj.get("spec").is_some() {
            obj["metadata"]["generation"] = json!(1);
        }
        defaults::initial_status(info.kind, obj);
    }

    async fn create_once(
        &self,
        info: &ResourceInfo,
        obj: &mut Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        let ns = meta_str(obj, "namespace").map(String::from);
        let key = info.key(ns.as_deref(), &name);
        if opts.dry_run {
            if self.store.get(&key).await.ok().flatten().is_some() {
                return Err(ApiError::AlreadyExists(subject(info, &name)));
            }
            return Ok(obj.clone());
        }
        let taken = if info.kind == "Service" {
            self.allocate_service(info, obj).await?
        } else {
            Taken::default()
        };
        match self.store.create(&key, encode(obj)).await {
            Ok(kv) => Ok(written(obj.clone(), &kv)),
            Err(e) => {
                self.release(&taken).await;
                Err(match e {
                    StorageError::AlreadyExists { .. } => {
                        ApiError::AlreadyExists(subject(info, &name))
                    }
                    other => ApiError::from_storage(other, subject(info, &name)),
                })
            }
        }
    }

    /// Allocates a new Service's ClusterIP and NodePorts (or reserves the ones it asks for).
    async fn allocate_service(
        &self,
        info: &ResourceInfo,
        svc: &mut Value,
    ) -> Result<Taken, ApiError> {
        let mut alloc = self.alloc.lock().await;
        let mut taken = Taken::default();
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        let ty = ty.to_string();
        let svc_name = meta_str(svc, "name").unwrap_or("").to_string();
        let invalid = |field: &str, msg: String| ApiError::Invalid {
            group: info.group.into(),
            subject_kind: info.kind.into(),
            name: svc_name.clone(),
            causes: vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: msg,
                field: field.into(),
            }],
        };
        if ty != "ExternalName" {
            let requested = svc
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("");
            let ip = match requested {
                "None" => None,
                "" => Some(
                    alloc
                        .allocate_ip()
                        .map_err(|e| invalid("spec.clusterIP", e.to_string()))?,
                ),
                ip => {
                    alloc.take_ip(ip).map_err(|e| {
                        invalid("spec.clusterIP", format!("Invalid value: {ip:?}: {e}"))
                    })?;
                    Some(ip.to_string())
                }
            };
            if let Some(ip) = ip {
                svc["spec"]["clusterIP"] = json!(ip);
                svc["spec"]["clusterIPs"] = json!([ip]);
                taken.ips.push(ip);
            } else {
                svc["spec"]["clusterIPs"] = json!(["None"]);
            }
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            let ports = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut);
            for (i, p) in ports.into_iter().flatten().enumerate() {
                let port = match p.get("nodePort").and_then(Value::as_u64) {
                    Some(n) => {
                        let n = u16::try_from(n).unwrap_or(0);
                        if let Err(e) = alloc.take_port(n) {
                            drop(alloc);
                            self.release(&taken).await;
                            return Err(invalid(
                                &format!("spec.ports[{i}].nodePort"),
                                e.to_string(),
                            ));
                        }
                        n
                    }
                    None => match alloc.allocate_port() {
                        Ok(n) => n,
                        Err(e) => {
                            drop(alloc);
                            self.release(&taken).await;
                            return Err(invalid(
                                &format!("spec.ports[{i}].nodePort"),
                                e.to_string(),
                            ));
                        }
                    },
                };
                p["nodePort"] = json!(port);
                taken.ports.push(port);
            }
        }
        Ok(taken)
    }

    /// Gives allocations back (a failed create, or a deleted Service).
    pub async fn release(&self, taken: &Taken) {
        let mut alloc = self.alloc.lock().await;
        taken.ips.iter().for_each(|ip| alloc.release_ip(ip));
        taken.ports.iter().for_each(|p| alloc.release_port(*p));
    }
}

/// Addresses and ports a Service holds.
#[derive(Debug, Default)]
pub struct Taken {
    pub ips: Vec<String>,
    pub ports: Vec<u16>,
}

impl Taken {
    pub fn of_service(svc: &Value) -> Self {
        Self {
            ips: super::service_ips(svc),
            ports: super::service_node_ports(svc),
        }
    }
}
