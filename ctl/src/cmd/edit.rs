//! `edit TYPE NAME`: the object as YAML in $KUBE_EDITOR / $EDITOR (default `vi`), replaced
//! on the server when saved with changes.

use kube::api::{DynamicObject, PostParams};

use crate::cli::EditArgs;
use crate::error::Error;
use crate::output;
use crate::session::Session;
use crate::target::single;

const HEADER: &str = "# Please edit the object below. Lines beginning with a '#' will be ignored,\n# and an empty file will abort the edit. If an error occurs while saving this file will be\n# reopened with the relevant failures.\n#\n";

fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn run(s: &Session, args: &EditArgs) -> Result<(), Error> {
    let (kind, name) = single(&args.resources, "edit")?;
    let res = s.resolve(&kind).await?;
    let api = s.api(&res);
    let obj = api.get(&name).await?;
    let value = output::with_type(&res, serde_json::to_value(&obj).unwrap_or_default());
    let json = args.output == "json";
    let body = if json {
        output::to_json(&value)
    } else {
        output::to_yaml(&value)
    };
    let original = format!("{HEADER}{body}");
    let file = tempfile::Builder::new()
        .prefix(&format!("minictl-edit-{name}-"))
        .suffix(if json { ".json" } else { ".yaml" })
        .tempfile()
        .map_err(|e| Error::io("create the edit file", e))?;
    std::fs::write(file.path(), &original).map_err(|e| Error::io("write the edit file", e))?;
    let editor = std::env::var("KUBE_EDITOR")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .map_err(|e| Error::io(format!("run editor {editor:?}"), e))?;
    if !status.success() {
        return Err(Error::Failed(format!(
            "editor {editor:?} exited with {status}; no changes made"
        )));
    }
    let edited =
        std::fs::read_to_string(file.path()).map_err(|e| Error::io("read the edit file", e))?;
    let stripped = strip_comments(&edited);
    if stripped.trim().is_empty() {
        println!("Edit cancelled, saved file was empty.");
        return Ok(());
    }
    if stripped == strip_comments(&original) {
        println!("Edit cancelled, no changes made.");
        return Ok(());
    }
    let new: DynamicObject = serde_yaml::from_str(&stripped)
        .map_err(|e| Error::Failed(format!("the edited file is not valid: {e}")))?;
    if new.metadata.name.as_deref() != Some(name.as_str()) {
        return Err(Error::Failed(
            "metadata.name cannot be changed by edit".into(),
        ));
    }
    api.replace(
        &name,
        &PostParams {
            dry_run: false,
            field_manager: Some(crate::cmd::apply::FIELD_MANAGER.into()),
        },
        &new,
    )
    .await?;
    println!("{}/{name} edited", res.type_name());
    Ok(())
}
