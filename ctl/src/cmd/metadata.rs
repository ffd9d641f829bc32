//! `label` and `annotate`: `TYPE NAME KEY=VAL... KEY-`, refusing to change an existing value
//! without `--overwrite`, applied as a JSON merge patch on metadata.

use std::collections::BTreeMap;

use kube::api::ListParams;
use serde_json::{json, Value};

use crate::cli::MetadataArgs;
use crate::error::Error;
use crate::session::Session;
use crate::target::parse_targets;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Labels,
    Annotations,
}

impl Field {
    fn key(self) -> &'static str {
        match self {
            Field::Labels => "labels",
            Field::Annotations => "annotations",
        }
    }
    fn done(self) -> &'static str {
        match self {
            Field::Labels => "labeled",
            Field::Annotations => "annotated",
        }
    }
}

/// Changes asked for: `Some(value)` to set, `None` to remove (`key-`).
pub type Changes = BTreeMap<String, Option<String>>;

/// Splits arguments into resource arguments and changes (kubectl: the first `k=v` or `k-`
/// ends the resource list).
pub fn split_args(args: &[String]) -> Result<(Vec<String>, Changes), Error> {
    let is_change = |a: &str| a.contains('=') || (a.ends_with('-') && !a.contains('/'));
    let split = args.iter().position(|a| is_change(a)).unwrap_or(args.len());
    let (res, changes) = args.split_at(split);
    let mut out = Changes::new();
    for c in changes {
        if let Some((k, v)) = c.split_once('=') {
            out.insert(k.to_string(), Some(v.to_string()));
        } else if let Some(k) = c.strip_suffix('-') {
            out.insert(k.to_string(), None);
        } else {
            return Err(Error::Usage(format!(
                "invalid argument {c:?}: expected KEY=VALUE or KEY-"
            )));
        }
    }
    if out.is_empty() {
        return Err(Error::Usage(
            "at least one label or annotation update is required".into(),
        ));
    }
    Ok((res.to_vec(), out))
}

/// The merge patch for an object's current map, or an error for a value that would change
/// without `--overwrite`. None when nothing changes.
pub fn plan(
    current: &Value,
    changes: &Changes,
    overwrite: bool,
    field: Field,
) -> Result<Option<Value>, String> {
    let mut patch = serde_json::Map::new();
    for (k, v) in changes {
        let existing = current.get(k).and_then(Value::as_str);
        match (v, existing) {
            (Some(v), Some(e)) if e == v => {}
            (Some(_), Some(e)) if !overwrite => {
                return Err(format!(
                    "'{k}' already has a value ({e}), and --overwrite is false"
                ));
            }
            (Some(v), _) => {
                patch.insert(k.clone(), json!(v));
            }
            (None, Some(_)) => {
                patch.insert(k.clone(), Value::Null);
            }
            (None, None) => {}
        }
    }
    Ok((!patch.is_empty()).then(|| json!({"metadata": {field.key(): patch}})))
}

pub async fn run(s: &Session, args: &MetadataArgs, field: Field) -> Result<(), Error> {
    let (res_args, changes) = split_args(&args.args)?;
    let targets = parse_targets(&res_args)?;
    if targets.is_empty() {
        return Err(Error::Usage(
            "one or more resources must be specified as <resource> <name> or <resource>/<name>"
                .into(),
        ));
    }
    for t in targets {
        let res = s.resolve(&t.resource).await?;
        let api = s.api(&res);
        let mut names = t.names.clone();
        if names.is_empty() {
            if !args.all && args.selector.is_none() {
                return Err(Error::Usage(
                    "resource(s) were provided, but no name was specified".into(),
                ));
            }
            let lp = ListParams {
                label_selector: args.selector.clone(),
                ..Default::default()
            };
            names = api
                .list(&lp)
                .await?
                .items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .collect();
        }
        for name in names {
            let obj = api.get(&name).await?;
            let current =
                serde_json::to_value(&obj.metadata).unwrap_or_default()[field.key()].clone();
            match plan(&current, &changes, args.overwrite, field)
                .map_err(|m| Error::Failed(format!("{}/{name}: {m}", res.type_name())))?
            {
                Some(patch) => {
                    crate::cmd::write::patch_merge(&api, &name, &patch).await?;
                    println!("{}/{name} {}", res.type_name(), field.done());
                }
                None => println!("{}/{name} not {}", res.type_name(), field.done()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_plan() {
        let a: Vec<String> = ["pod", "web", "app=x", "old-"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (res, ch) = split_args(&a).unwrap();
        assert_eq!(res, ["pod", "web"]);
        assert_eq!(ch.get("app"), Some(&Some("x".into())));
        assert_eq!(ch.get("old"), Some(&None));
        let cur = json!({"app": "y", "old": "1"});
        let err = plan(&cur, &ch, false, Field::Labels).unwrap_err();
        assert_eq!(
            err,
            "'app' already has a value (y), and --overwrite is false"
        );
        let p = plan(&cur, &ch, true, Field::Labels).unwrap().unwrap();
        assert_eq!(
            p,
            json!({"metadata": {"labels": {"app": "x", "old": null}}})
        );
        let same = json!({"app": "x"});
        let only_set: Changes = [("app".to_string(), Some("x".to_string()))].into();
        assert_eq!(
            plan(&same, &only_set, false, Field::Annotations).unwrap(),
            None
        );
        assert!(split_args(&["pod".into(), "web".into()]).is_err());
    }
}
