//! Two renders → one `nft -f` transaction. The kernel applies a file atomically: either every
//! command lands or none does, and packets never see a half-written table.
//!
//! - [`full`] replaces the table outright (`add table; delete table; table { … }`): used for the
//!   first sync and after any failure, so whatever state was there (a previous run, a hand edit)
//!   is gone.
//! - [`update`] changes only what differs, as kube-proxy's nftables mode does: new chains and
//!   collections are added, changed chains are flushed and refilled, maps and sets get only
//!   their element changes, and chains/collections no longer rendered are flushed and deleted. Chains whose
//!   rules did not change are not touched, so an Endpoints change costs a few commands, not a
//!   rewrite of every Service, and the affinity sets keep their clients.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::render::{Chain, Collection, Ruleset};

/// `add table; delete table; table ip <t> { … }`.
pub fn full(table: &str, rs: &Ruleset) -> String {
    let mut s = format!("add table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n");
    for (name, c) in &rs.collections {
        let _ = writeln!(s, "\t{} {name} {{ {} }}", c.kind, c.decl);
    }
    for (name, chain) in &rs.chains {
        let _ = writeln!(s, "\tchain {name} {{");
        if let Some(hook) = chain.hook {
            let _ = writeln!(s, "\t\t{hook}");
        }
        for rule in &chain.rules {
            let _ = writeln!(s, "\t\t{rule}");
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    for (name, c) in &rs.collections {
        add_elements(&mut s, table, name, c);
    }
    s
}

/// The commands that turn `old` into `new`; empty when nothing changed.
pub fn update(table: &str, old: &Ruleset, new: &Ruleset) -> String {
    let mut s = String::new();
    // Declarations first, so rules added below can reference any chain or collection.
    for (name, chain) in &new.chains {
        if !old.chains.contains_key(name) {
            let _ = match chain.hook {
                Some(hook) => writeln!(s, "add chain ip {table} {name} {{ {hook} }}"),
                None => writeln!(s, "add chain ip {table} {name}"),
            };
        }
    }
    for (name, c) in &new.collections {
        match old.collections.get(name) {
            None => {
                let _ = writeln!(s, "add {} ip {table} {name} {{ {} }}", c.kind, c.decl);
                add_elements(&mut s, table, name, c);
            }
            Some(prev) if prev.elements != c.elements => {
                element_delta(&mut s, table, name, prev, c)
            }
            Some(_) => {}
        }
    }
    for (name, chain) in &new.chains {
        match old.chains.get(name) {
            Some(prev) if prev == chain => {}
            Some(_) => {
                let _ = writeln!(s, "flush chain ip {table} {name}");
                add_rules(&mut s, table, name, chain);
            }
            None => add_rules(&mut s, table, name, chain),
        }
    }
    // Stale objects: empty every stale chain before deleting any, since they jump to each other.
    let stale: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    for name in &stale {
        let _ = writeln!(s, "flush chain ip {table} {name}");
    }
    for name in &stale {
        let _ = writeln!(s, "delete chain ip {table} {name}");
    }
    for (name, c) in &old.collections {
        if !new.collections.contains_key(name) {
            let _ = writeln!(s, "delete {} ip {table} {name}", c.kind);
        }
    }
    s
}

/// Deletes the elements `old` has and `new` lacks (by key: a map element's text up to ` : `)
/// and adds the ones `new` brings, so one endpoint change does not rewrite a 10,000-element set.
fn element_delta(s: &mut String, table: &str, name: &str, old: &Collection, new: &Collection) {
    let before: BTreeSet<&String> = old.elements.iter().collect();
    let after: BTreeSet<&String> = new.elements.iter().collect();
    let removed: Vec<&str> = before
        .difference(&after)
        .map(|e| e.split(" : ").next().unwrap_or(e))
        .collect();
    if !removed.is_empty() {
        let _ = writeln!(
            s,
            "delete element ip {table} {name} {{ {} }}",
            removed.join(", ")
        );
    }
    let added: Vec<&str> = after.difference(&before).map(|e| e.as_str()).collect();
    if !added.is_empty() {
        let _ = writeln!(
            s,
            "add element ip {table} {name} {{ {} }}",
            added.join(", ")
        );
    }
}

fn add_rules(s: &mut String, table: &str, name: &str, chain: &Chain) {
    for rule in &chain.rules {
        let _ = writeln!(s, "add rule ip {table} {name} {rule}");
    }
}

fn add_elements(s: &mut String, table: &str, name: &str, c: &Collection) {
    if !c.elements.is_empty() {
        let _ = writeln!(
            s,
            "add element ip {table} {name} {{ {} }}",
            c.elements.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::build;
    use crate::model::fixtures::{service, slice};
    use crate::nft::render::{ruleset, Options};
    use serde_json::json;

    fn rs(eps: &[(&str, Option<bool>)]) -> Ruleset {
        let svc = service("default", "web", "10.96.0.5", json!([{"port": 80}]));
        let sl = slice("default", "web", eps, &[("", 8080, "TCP")]);
        ruleset(&build([&svc], [&sl]), &Options::default())
    }

    #[test]
    fn full_replaces_the_table_in_one_file() {
        let s = full("minik8s-n1", &rs(&[("10.244.1.2", None)]));
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "add table ip minik8s-n1");
        assert_eq!(lines[1], "delete table ip minik8s-n1");
        assert_eq!(lines[2], "table ip minik8s-n1 {");
        assert!(s.contains("\tchain svc-default/web/tcp/80 {\n"));
        assert!(s.contains(
            "add element ip minik8s-n1 service-ips { 10.96.0.5 . tcp . 80 : goto svc-default/web/tcp/80 }"
        ));
        assert!(!s.contains("minik8s-n2"), "touches only its own table");
    }

    #[test]
    fn update_touches_only_what_changed() {
        let one = rs(&[("10.244.1.2", None)]);
        assert_eq!(update("t", &one, &one), "", "no change, no commands");
        let two = rs(&[("10.244.1.2", None), ("10.244.1.3", None)]);
        let s = update("t", &one, &two);
        assert!(s.contains("flush chain ip t svc-default/web/tcp/80\n"));
        assert!(s.contains("add element ip t hairpin { 10.244.1.3 . 10.244.1.3 }\n"));
        assert!(
            !s.contains("10.244.1.2 . 10.244.1.2"),
            "unchanged elements untouched"
        );
        assert!(!s.contains("service-ips"), "the service map did not change");
        assert!(update("t", &two, &one)
            .contains("delete element ip t hairpin { 10.244.1.3 . 10.244.1.3 }"));
        // Last endpoint gone: the service moves from the DNAT map to the reject map.
        let none = rs(&[]);
        let s = update("t", &one, &none);
        assert!(s.contains("delete element ip t service-ips { 10.96.0.5 . tcp . 80 }\n"));
        assert!(s.contains(
            "add element ip t no-endpoint-services { 10.96.0.5 . tcp . 80 : goto reject-chain }"
        ));
        let elements = s.find("delete element ip t service-ips").unwrap();
        let flush = s.find("flush chain ip t svc-default/web/tcp/80").unwrap();
        let delete = s.find("delete chain ip t svc-default/web/tcp/80").unwrap();
        assert!(
            elements < delete && flush < delete,
            "references go before the chain"
        );
    }
}
