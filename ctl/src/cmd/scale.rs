//! `scale --replicas=N deployment/NAME` through the scale subresource.

use crate::cli::ScaleArgs;
use crate::error::Error;
use crate::session::Session;
use crate::target::parse_targets;

pub async fn run(s: &Session, args: &ScaleArgs) -> Result<(), Error> {
    if args.replicas < 0 {
        return Err(Error::Usage(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
                .into(),
        ));
    }
    let targets = parse_targets(&args.resources)?;
    if targets.is_empty() {
        return Err(Error::Usage("required resource not specified".into()));
    }
    for t in targets {
        let res = s.resolve(&t.resource).await?;
        if !res.has_subresource("scale") {
            return Err(Error::Failed(format!(
                "{} does not have a scale subresource",
                res.plural_name()
            )));
        }
        let api = s.api(&res);
        for name in &t.names {
            crate::cmd::write::scale(&api, name, args.replicas).await?;
            println!("{}/{name} scaled", res.type_name());
        }
    }
    Ok(())
}
