//! Resource arguments as kubectl reads them: `pods`, `pod web db`, `pod/web svc/x`,
//! `pods,services`, `all`.

use crate::error::Error;

/// One resource type token (unresolved) and the names asked for (empty: all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: String,
    pub names: Vec<String>,
}

pub fn parse_targets(args: &[String]) -> Result<Vec<Target>, Error> {
    let Some(first) = args.first() else {
        return Ok(Vec::new());
    };
    if first.contains('/') {
        let mut out: Vec<Target> = Vec::new();
        for a in args {
            let (res, name) = a.split_once('/').filter(|(r, n)| !r.is_empty() && !n.is_empty()).ok_or_else(|| {
                Error::Usage(format!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'minictl get resource/<resource_name>' instead of 'minictl get resource resource/<resource_name>'): {a}"
                ))
            })?;
            match out.iter_mut().find(|t| t.resource == res) {
                Some(t) => t.names.push(name.to_string()),
                None => out.push(Target {
                    resource: res.to_string(),
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args[1..].to_vec();
    if let Some(bad) = names.iter().find(|n| n.contains('/')) {
        return Err(Error::Usage(format!(
            "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form: {bad}"
        )));
    }
    Ok(first
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|r| Target {
            resource: r.to_string(),
            names: names.clone(),
        })
        .collect())
}

/// Exactly one `TYPE NAME` or `TYPE/NAME`.
pub fn single(args: &[String], verb: &str) -> Result<(String, String), Error> {
    let targets = parse_targets(args)?;
    match targets.as_slice() {
        [t] if t.names.len() == 1 => Ok((t.resource.clone(), t.names[0].clone())),
        _ => Err(Error::Usage(format!(
            "{verb} needs exactly one resource: TYPE NAME or TYPE/NAME"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse_targets(&s(&["pods"])).unwrap(),
            vec![Target {
                resource: "pods".into(),
                names: vec![]
            }]
        );
        assert_eq!(
            parse_targets(&s(&["pod", "a", "b"])).unwrap(),
            vec![Target {
                resource: "pod".into(),
                names: s(&["a", "b"])
            }]
        );
        let t = parse_targets(&s(&["pods,svc"])).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].resource, "svc");
        let t = parse_targets(&s(&["pod/a", "svc/b", "pod/c"])).unwrap();
        assert_eq!(t[0].names, s(&["a", "c"]));
        assert_eq!(t[1].names, s(&["b"]));
        assert!(parse_targets(&s(&["pod", "svc/b"])).is_err());
        assert_eq!(
            single(&s(&["deploy/web"]), "scale").unwrap(),
            ("deploy".into(), "web".into())
        );
        assert!(single(&s(&["deploy"]), "scale").is_err());
    }
}
