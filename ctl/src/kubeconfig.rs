//! Finding and reading the kubeconfig, and the `config` verbs.
//!
//! Lookup order (kubectl's, plus the minik8s server's admin file as a last resort):
//! `--kubeconfig`, then the first existing path in `$KUBECONFIG`, then `~/.kube/config`,
//! then `/var/lib/minik8s/admin.kubeconfig`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_yaml::Value;

use crate::cli::{ConfigCommand, ConfigViewArgs, GlobalArgs};
use crate::table::TextTable;

/// Where the minik8s server writes its admin kubeconfig by default.
pub const DEFAULT_ADMIN_KUBECONFIG: &str = "/var/lib/minik8s/admin.kubeconfig";

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("no kubeconfig found (tried {}); pass --kubeconfig or set KUBECONFIG", list(.tried))]
    NotFound { tried: Vec<PathBuf> },
    #[error("cannot read kubeconfig {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid kubeconfig {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("invalid kubeconfig {path}: {source}")]
    Load {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot build a client from kubeconfig {path}: {source}")]
    Client { path: PathBuf, source: kube::Error },
    #[error("no context exists with the name: \"{name}\"")]
    NoSuchContext { name: String },
    #[error("current-context is not set")]
    NoCurrentContext,
    #[error("cannot write kubeconfig {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Picks the kubeconfig file. Pure: the environment and file system come in as arguments
/// so the order can be unit-tested.
pub fn locate_with(
    flag: Option<&Path>,
    env: Option<OsString>,
    home: Option<PathBuf>,
    exists: impl Fn(&Path) -> bool,
) -> Result<PathBuf, KubeconfigError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let mut tried = Vec::new();
    if let Some(env) = env.filter(|e| !e.is_empty()) {
        for p in std::env::split_paths(&env) {
            if exists(&p) {
                return Ok(p);
            }
            tried.push(p);
        }
    }
    if let Some(home) = home {
        let p = home.join(".kube").join("config");
        if exists(&p) {
            return Ok(p);
        }
        tried.push(p);
    }
    let admin = PathBuf::from(DEFAULT_ADMIN_KUBECONFIG);
    if exists(&admin) {
        return Ok(admin);
    }
    tried.push(admin);
    Err(KubeconfigError::NotFound { tried })
}

/// Picks the kubeconfig file from the real environment.
pub fn locate(global: &GlobalArgs) -> Result<PathBuf, KubeconfigError> {
    locate_with(
        global.kubeconfig.as_deref(),
        std::env::var_os("KUBECONFIG"),
        std::env::var_os("HOME").map(PathBuf::from),
        |p| p.exists(),
    )
}

/// Builds a `kube::Client` for the chosen context; returns it with its default namespace.
pub async fn client(
    global: &GlobalArgs,
) -> Result<(kube::Client, String, String), KubeconfigError> {
    let path = locate(global)?;
    let kc = Kubeconfig::read_from(&path).map_err(|source| KubeconfigError::Load {
        path: path.clone(),
        source,
    })?;
    if let Some(ctx) = &global.context {
        if !kc.contexts.iter().any(|c| &c.name == ctx) {
            return Err(KubeconfigError::NoSuchContext { name: ctx.clone() });
        }
    }
    let opts = KubeConfigOptions {
        context: global.context.clone(),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .map_err(|source| KubeconfigError::Load {
            path: path.clone(),
            source,
        })?;
    // A CLI reports a 503/429 at once (kubectl does); kube's default retry layer would back
    // off for minutes on the 503 pods/log answers while no node serves logs.
    let mut config = config;
    config.default_retry = false;
    let namespace = config.default_namespace.clone();
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|source| KubeconfigError::Client { path, source })?;
    Ok((client, namespace, server))
}

fn read_value(path: &Path) -> Result<Value, KubeconfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|source| KubeconfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `minictl config ...`.
pub fn run(global: &GlobalArgs, cmd: &ConfigCommand) -> Result<(), KubeconfigError> {
    let path = locate(global)?;
    let mut doc = read_value(&path)?;
    match cmd {
        ConfigCommand::View(args) => print!("{}", view(doc, args)),
        ConfigCommand::CurrentContext => match doc.get("current-context").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => println!("{c}"),
            _ => return Err(KubeconfigError::NoCurrentContext),
        },
        ConfigCommand::UseContext(args) => {
            if !context_names(&doc).contains(&args.context) {
                return Err(KubeconfigError::NoSuchContext {
                    name: args.context.clone(),
                });
            }
            doc["current-context"] = Value::String(args.context.clone());
            let text = serde_yaml::to_string(&doc).expect("a YAML value always serializes");
            std::fs::write(&path, text).map_err(|source| KubeconfigError::Write {
                path: path.clone(),
                source,
            })?;
            println!("Switched to context \"{}\".", args.context);
        }
        ConfigCommand::GetContexts => print!("{}", contexts_table(&doc)),
    }
    Ok(())
}

fn context_names(doc: &Value) -> Vec<String> {
    named(doc, "contexts")
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn named<'a>(doc: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    doc.get(key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
}

fn contexts_table(doc: &Value) -> String {
    let current = doc.get("current-context").and_then(Value::as_str);
    let mut t = TextTable::new(&["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]);
    for c in named(doc, "contexts") {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let field = |k: &str| {
            c.get("context")
                .and_then(|x| x.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let mark = if Some(name) == current { "*" } else { "" };
        t.row(vec![
            mark.into(),
            name.into(),
            field("cluster"),
            field("user"),
            field("namespace"),
        ]);
    }
    t.render()
}

/// `config view`: the file with certificate and key data and tokens redacted the way
/// kubectl does (`DATA+OMITTED`, `REDACTED`) unless `--raw`.
pub fn view(mut doc: Value, args: &ConfigViewArgs) -> String {
    if args.minify {
        minify(&mut doc);
    }
    if !args.raw {
        redact(&mut doc);
    }
    serde_yaml::to_string(&doc).expect("a YAML value always serializes")
}

fn minify(doc: &mut Value) {
    let Some(current) = doc
        .get("current-context")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    let ctx = named(doc, "contexts")
        .find(|c| c.get("name").and_then(Value::as_str) == Some(&current))
        .and_then(|c| c.get("context"))
        .cloned()
        .unwrap_or(Value::Null);
    let keep = |doc: &mut Value, key: &str, name: Option<&str>| {
        if let Some(seq) = doc.get_mut(key).and_then(Value::as_sequence_mut) {
            seq.retain(|e| e.get("name").and_then(Value::as_str) == name);
        }
    };
    keep(doc, "contexts", Some(&current));
    keep(doc, "clusters", ctx.get("cluster").and_then(Value::as_str));
    keep(doc, "users", ctx.get("user").and_then(Value::as_str));
}

fn redact(doc: &mut Value) {
    for (list, inner) in [("clusters", "cluster"), ("users", "user")] {
        let Some(seq) = doc.get_mut(list).and_then(Value::as_sequence_mut) else {
            continue;
        };
        for entry in seq {
            let Some(map) = entry.get_mut(inner).and_then(Value::as_mapping_mut) else {
                continue;
            };
            for (k, v) in map.iter_mut() {
                match k.as_str() {
                    Some(k) if k.ends_with("-data") => *v = Value::String("DATA+OMITTED".into()),
                    Some("token") | Some("password") => *v = Value::String("REDACTED".into()),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_everything() {
        let p = locate_with(
            Some(Path::new("/x/flag")),
            Some("/x/env".into()),
            Some("/home/u".into()),
            |_| true,
        )
        .unwrap();
        assert_eq!(p, PathBuf::from("/x/flag"));
    }

    #[test]
    fn env_then_home_then_admin() {
        let env = Some(OsString::from("/missing:/x/env2"));
        let p = locate_with(None, env.clone(), Some("/h".into()), |p| {
            p == Path::new("/x/env2")
        })
        .unwrap();
        assert_eq!(p, PathBuf::from("/x/env2"));
        let p = locate_with(None, env.clone(), Some("/h".into()), |p| {
            p == Path::new("/h/.kube/config")
        })
        .unwrap();
        assert_eq!(p, PathBuf::from("/h/.kube/config"));
        let p = locate_with(None, env.clone(), Some("/h".into()), |p| {
            p == Path::new(DEFAULT_ADMIN_KUBECONFIG)
        })
        .unwrap();
        assert_eq!(p, PathBuf::from(DEFAULT_ADMIN_KUBECONFIG));
        let err = locate_with(None, env, Some("/h".into()), |_| false).unwrap_err();
        assert!(err.to_string().contains("/h/.kube/config"), "{err}");
    }

    const SAMPLE: &str = "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c1\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: AAAA\n- name: c2\n  cluster:\n    server: https://x\ncontexts:\n- name: a\n  context:\n    cluster: c1\n    user: u1\n- name: b\n  context:\n    cluster: c2\n    user: u2\nusers:\n- name: u1\n  user:\n    token: secret\n    client-key-data: KKK\n- name: u2\n  user:\n    token: other\n";

    #[test]
    fn view_redacts_secrets_unless_raw() {
        let doc: Value = serde_yaml::from_str(SAMPLE).unwrap();
        let out = view(doc.clone(), &ConfigViewArgs::default());
        assert!(
            out.contains("certificate-authority-data: DATA+OMITTED"),
            "{out}"
        );
        assert!(out.contains("token: REDACTED"), "{out}");
        assert!(!out.contains("secret"), "{out}");
        let raw = view(
            doc,
            &ConfigViewArgs {
                raw: true,
                minify: false,
            },
        );
        assert!(raw.contains("token: secret"));
    }

    #[test]
    fn minify_keeps_only_the_current_context() {
        let doc: Value = serde_yaml::from_str(SAMPLE).unwrap();
        let out = view(
            doc,
            &ConfigViewArgs {
                raw: true,
                minify: true,
            },
        );
        assert!(
            out.contains("c1") && !out.contains("c2") && !out.contains("u2"),
            "{out}"
        );
    }

    #[test]
    fn contexts_table_marks_current() {
        let doc: Value = serde_yaml::from_str(SAMPLE).unwrap();
        let out = contexts_table(&doc);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE");
        assert!(lines[1].starts_with("*         a      c1"), "{out}");
    }
}
