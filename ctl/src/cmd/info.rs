//! `version`, `cluster-info`, `api-resources`.

use crate::cli::ApiResourcesArgs;
use crate::error::Error;
use crate::session::Session;
use crate::table::TextTable;

pub async fn version(s: &Session) -> Result<(), Error> {
    println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
    let info = s.client.apiserver_version().await?;
    println!("Server Version: {}", info.git_version);
    Ok(())
}

pub async fn cluster_info(s: &Session) -> Result<(), Error> {
    // Reaching /version proves the control plane answers before we say it runs.
    s.client.apiserver_version().await?;
    println!(
        "Kubernetes control plane is running at {}",
        s.client_url().trim_end_matches('/')
    );
    println!();
    println!("To further debug and diagnose cluster problems, use 'minictl get --raw' or 'minictl describe'.");
    Ok(())
}

pub async fn api_resources(s: &Session, args: &ApiResourcesArgs) -> Result<(), Error> {
    let index = s.index().await?;
    let mut rows: Vec<_> = index
        .resources
        .iter()
        .filter(|r| args.namespaced.is_none_or(|n| r.namespaced == n))
        .filter(|r| args.api_group.as_ref().is_none_or(|g| &r.group == g))
        .collect();
    // Core group first, then groups alphabetically, names alphabetically within a group.
    rows.sort_by(|a, b| {
        (!a.group.is_empty(), &a.group, &a.plural).cmp(&(!b.group.is_empty(), &b.group, &b.plural))
    });
    if args.output.as_deref() == Some("name") {
        for r in rows {
            println!("{}", r.plural_name());
        }
        return Ok(());
    }
    let wide = args.output.as_deref() == Some("wide");
    let mut headers = vec!["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"];
    if wide {
        headers.extend(["VERBS", "CATEGORIES"]);
    }
    let mut t = TextTable::new(&headers);
    for r in rows {
        let mut row = vec![
            r.plural.clone(),
            r.short_names.join(","),
            r.api_version(),
            r.namespaced.to_string(),
            r.kind.clone(),
        ];
        if wide {
            row.push(format!("[{}]", r.verbs.join(" ")));
            row.push(r.categories.join(","));
        }
        t.row(row);
    }
    print!("{}", t.render());
    Ok(())
}
