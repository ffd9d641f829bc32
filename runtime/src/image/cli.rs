//! `minik8s images …`: manage the runtime's image store from the command line, as
//! `ctr images` does for containerd (k3s: `k3s ctr images import`).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::error::ImageError;
use super::registry::{PullOptions, RegistryAuth};
use super::store::ImageStore;
use super::testimage;

/// The runtime's default `--root` plus `/images`.
pub const DEFAULT_ROOT: &str = "/var/lib/minik8s/runtime/images";

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// The image store (the runtime's `--root` + `/images`).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: ImagesCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Import OCI-layout or docker-archive tarballs (optionally gzip/zstd compressed).
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List images: id, size, tags.
    #[command(alias = "ls")]
    List,
    /// Pull an image from a registry.
    Pull {
        reference: String,
        /// `host:port` of a registry spoken to over plain HTTP (repeatable).
        #[arg(long = "insecure-registry")]
        insecure_registries: Vec<String>,
        /// `user:password` for the registry.
        #[arg(long)]
        user: Option<String>,
    },
    /// Remove a tag, digest reference or (by id) a whole image.
    #[command(alias = "rm")]
    Remove {
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Write the reproducible busybox test image (from /bin/busybox) as an OCI-layout tarball.
    BuildBusybox {
        out: PathBuf,
        #[arg(long, default_value = "docker.io/library/busybox:latest")]
        name: String,
    },
}

/// Runs one `minik8s images` command.
pub fn run(args: ImagesArgs) -> Result<(), ImageError> {
    let mut out = std::io::stdout().lock();
    let lines = match args.command {
        ImagesCommand::BuildBusybox { out: path, name } => {
            let built =
                testimage::build_busybox_oci_tar(&path, &name).map_err(ImageError::io(&path))?;
            vec![format!(
                "{} {} {}",
                path.display(),
                name,
                built.manifest_digest
            )]
        }
        ImagesCommand::Import { files } => {
            let store = ImageStore::open(&args.root)?;
            let mut lines = Vec::new();
            for file in files {
                for image in store.import(&file)? {
                    lines.push(format!(
                        "imported {} {}",
                        image.id,
                        image.repo_tags.join(",")
                    ));
                }
            }
            lines
        }
        ImagesCommand::List => list(&ImageStore::open(&args.root)?),
        ImagesCommand::Remove { references } => {
            let store = ImageStore::open(&args.root)?;
            let mut lines = Vec::new();
            for r in references {
                store.remove(&r)?;
                lines.push(format!("removed {r}"));
            }
            lines
        }
        ImagesCommand::Pull {
            reference,
            insecure_registries,
            user,
        } => {
            let store = ImageStore::open(&args.root)?;
            let image = pull(&store, &reference, insecure_registries, user)?;
            vec![format!("pulled {} {}", image.id, image.repo_tags.join(","))]
        }
    };
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    Ok(())
}

fn list(store: &ImageStore) -> Vec<String> {
    let mut lines = vec![format!("{:<20} {:>12}  TAGS", "IMAGE ID", "SIZE")];
    for image in store.list() {
        let tags = if image.repo_tags.is_empty() {
            "<none>".to_string()
        } else {
            image.repo_tags.join(",")
        };
        lines.push(format!(
            "{:<20} {:>12}  {}",
            &image.id[7..20],
            image.size,
            tags
        ));
    }
    lines
}

fn pull(
    store: &ImageStore,
    reference: &str,
    insecure_registries: Vec<String>,
    user: Option<String>,
) -> Result<super::Image, ImageError> {
    let auth = user.map(|u| {
        let (username, password) = u.split_once(':').map_or((u.as_str(), ""), |(a, b)| (a, b));
        RegistryAuth {
            username: Some(username.into()),
            password: Some(password.into()),
            ..Default::default()
        }
    });
    let opts = PullOptions {
        insecure_registries,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ImageError::io("tokio runtime"))?;
    runtime.block_on(store.pull(reference, auth.as_ref(), &opts))
}
