//! One pull's conversation with a registry: manifests and blobs over the distribution v2 API,
//! answering auth challenges once per pull.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::auth::{basic_header, fetch_token, parse_challenge, Challenge};
use super::{PullOptions, RegistryAuth};
use crate::image::blobs::Blobs;
use crate::image::digest::{sha256_digest, verify, Sha256};
use crate::image::error::ImageError;
use crate::image::reference::Reference;

/// Manifests beyond this size are refused (distribution's own limit is 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;
/// Failing to connect within this is "unreachable"; transfers themselves have no deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

pub struct RegistryClient {
    http: reqwest::Client,
    reference: Reference,
    base: String,
    host: String,
    auth: Option<RegistryAuth>,
    /// The `Authorization` value that the registry accepted (or we last obtained).
    authorization: Mutex<Option<String>>,
}

/// A fetched manifest or index.
pub struct FetchedManifest {
    pub digest: String,
    pub media_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl RegistryClient {
    pub fn new(
        reference: &Reference,
        auth: Option<&RegistryAuth>,
        opts: &PullOptions,
    ) -> Result<Self, ImageError> {
        let host = reference.api_host().to_string();
        let insecure = opts
            .insecure_registries
            .iter()
            .any(|r| *r == host || *r == reference.domain);
        let scheme = if insecure { "http" } else { "https" };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("minik8s/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ImageError::RegistryUnreachable {
                registry: host.clone(),
                source,
            })?;
        let authorization = auth
            .and_then(|a| a.registry_token.as_ref())
            .map(|t| format!("Bearer {t}"));
        Ok(RegistryClient {
            http,
            reference: reference.clone(),
            base: format!("{scheme}://{host}/v2/{}", reference.path),
            host,
            auth: auth.cloned(),
            authorization: Mutex::new(authorization),
        })
    }

    /// GETs `url`; on 401 answers the challenge once and retries.
    async fn get(&self, url: &str, accept: Option<&str>) -> Result<reqwest::Response, ImageError> {
        for attempt in 0..2 {
            let mut req = self.http.get(url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(auth) = self.authorization.lock().await.clone() {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = req
                .send()
                .await
                .map_err(|source| ImageError::RegistryUnreachable {
                    registry: self.host.clone(),
                    source,
                })?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let message = error_message(
                resp.headers().clone(),
                resp.text().await.unwrap_or_default(),
            );
            if attempt == 1 {
                return Err(self.unauthorized(message));
            }
            self.answer_challenge(&message).await?;
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Gets the credentials the last 401's challenge asks for.
    async fn answer_challenge(&self, message: &(HeaderMap, String)) -> Result<(), ImageError> {
        let header = message
            .0
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let value = match parse_challenge(header) {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope =
                    scope.unwrap_or_else(|| format!("repository:{}:pull", self.reference.path));
                let token = fetch_token(
                    &self.http,
                    &realm,
                    service.as_deref(),
                    &scope,
                    self.auth.as_ref(),
                )
                .await?;
                format!("Bearer {token}")
            }
            Some(Challenge::Basic) => basic_header(self.auth.as_ref())
                .ok_or_else(|| self.unauthorized(message.clone()))?,
            None => return Err(self.unauthorized(message.clone())),
        };
        *self.authorization.lock().await = Some(value);
        Ok(())
    }

    fn unauthorized(&self, message: (HeaderMap, String)) -> ImageError {
        ImageError::Unauthorized {
            registry: self.host.clone(),
            reference: self.reference.to_string(),
            message: message.1,
        }
    }

    /// Fetches the manifest or index `reference` (tag or digest) and verifies its digest.
    pub async fn manifest(&self, reference: &str) -> Result<FetchedManifest, ImageError> {
        let url = format!("{}/manifests/{reference}", self.base);
        let resp = self.get(&url, Some(MANIFEST_ACCEPT)).await?;
        let resp = self.check_status(resp, &url).await?;
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| ImageError::RegistryUnreachable {
                registry: self.host.clone(),
                source,
            })?;
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_MANIFEST {
                return Err(ImageError::invalid(
                    format!("manifest {url}"),
                    "larger than 4 MiB",
                ));
            }
        }
        let digest = sha256_digest(&bytes);
        let what = format!("manifest {}@{reference}", self.reference.name());
        if reference.starts_with("sha256:") {
            verify(&what, reference, &digest)?;
        } else if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
            verify(&what, &h, &digest)?;
        }
        Ok(FetchedManifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// Streams blob `digest` into the content store, verifying digest and size.
    pub async fn blob(&self, blobs: &Blobs, digest: &str, size: u64) -> Result<(), ImageError> {
        let url = format!("{}/blobs/{digest}", self.base);
        let resp = self.get(&url, None).await?;
        let resp = self.check_status(resp, &url).await?;
        let tmp = blobs.create_temp()?;
        let tmp_path = tmp.path().to_path_buf();
        let std_file = tmp.reopen().map_err(ImageError::io(&tmp_path))?;
        let mut file = tokio::io::BufWriter::new(tokio::fs::File::from_std(std_file));
        let mut hasher = Sha256::default();
        let mut written = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| ImageError::RegistryUnreachable {
                registry: self.host.clone(),
                source,
            })?;
            hasher.update(&chunk);
            written += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(ImageError::io(&tmp_path))?;
        }
        file.flush().await.map_err(ImageError::io(&tmp_path))?;
        drop(file);
        let actual = hasher.finish();
        verify(format!("blob {url}"), digest, &actual)?;
        if size != 0 && written != size {
            return Err(ImageError::invalid(
                format!("blob {url}"),
                format!("{written} bytes, manifest says {size}"),
            ));
        }
        let blobs = blobs.clone();
        let digest = digest.to_string();
        tokio::task::spawn_blocking(move || blobs.commit(tmp, &digest))
            .await
            .map_err(|e| ImageError::Task {
                what: "blob commit".into(),
                message: e.to_string(),
            })?
    }

    /// Maps 404 and the registry's MANIFEST_UNKNOWN/NAME_UNKNOWN/BLOB_UNKNOWN to NotFound.
    async fn check_status(
        &self,
        resp: reqwest::Response,
        url: &str,
    ) -> Result<reqwest::Response, ImageError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let (_, message) = error_message(
            resp.headers().clone(),
            resp.text().await.unwrap_or_default(),
        );
        let unknown = ["MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"]
            .iter()
            .any(|c| message.contains(c));
        if status == StatusCode::NOT_FOUND || unknown {
            return Err(ImageError::NotFound {
                reference: self.reference.to_string(),
            });
        }
        if status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized((HeaderMap::new(), message)));
        }
        Err(ImageError::RegistryStatus {
            registry: self.host.clone(),
            url: url.to_string(),
            status: status.as_u16(),
            message,
        })
    }
}

/// The registry's error body (`{"errors":[{"code":…,"message":…}]}`) as one line.
fn error_message(headers: HeaderMap, body: String) -> (HeaderMap, String) {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let message = match serde_json::from_str::<Errors>(&body) {
        Ok(e) => e
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => body.trim().chars().take(200).collect(),
    };
    (headers, message)
}
