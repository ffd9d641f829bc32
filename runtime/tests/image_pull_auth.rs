//! Bearer-token auth as Docker Hub does it, against a real `docker-registry` configured with
//! `auth: token`: it refuses requests without a valid JWT and sends the client to a token server
//! (this test's, which checks basic credentials and signs ES256 JWTs with an x5c certificate
//! the registry trusts via `rootcertbundle`). skopeo pushes through the same token server.
//! Basic auth runs against a registry with `auth: htpasswd`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use minik8s_runtime::image::test_registry::TestRegistry;
use minik8s_runtime::image::testimage;
use minik8s_runtime::image::{ImageError, ImageStore, PullOptions, RegistryAuth};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

const SERVICE: &str = "minik8s-test-registry";
const ISSUER: &str = "minik8s-test-issuer";
const USER: &str = "alice";
const PASSWORD: &str = "s3cret";
/// Token round trips plus a small pull; longer means the auth flow is stuck.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

struct TokenServer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
    requests: AtomicUsize,
    authenticated: AtomicUsize,
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

impl TokenServer {
    /// distribution's token spec: ES256 JWT, `x5c` with our certificate, `access` per scope.
    fn token(&self, access: Vec<serde_json::Value>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({
            "typ": "JWT", "alg": "ES256",
            "x5c": [base64::engine::general_purpose::STANDARD.encode(&self.cert_der)],
        });
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
            "iat": now, "jti": format!("t{}", self.requests.load(Ordering::SeqCst)), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .unwrap();
        format!("{signing_input}.{}", b64url(sig.as_ref()))
    }
}

async fn issue(
    State(server): State<Arc<TokenServer>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> axum::response::Response {
    server.requests.fetch_add(1, Ordering::SeqCst);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let authenticated = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => false,
        Some(v) if v == expected => true,
        Some(_) => return (StatusCode::UNAUTHORIZED, "bad credentials").into_response(),
    };
    if params.iter().any(|(k, v)| k == "service" && v != SERVICE) {
        return (StatusCode::BAD_REQUEST, "unknown service").into_response();
    }
    // Anonymous clients get a token without access, as Docker Hub does for private repositories.
    let mut access = Vec::new();
    if authenticated {
        server.authenticated.fetch_add(1, Ordering::SeqCst);
        for (_, scope) in params.iter().filter(|(k, _)| k == "scope") {
            let mut parts = scope.splitn(2, ':');
            let kind = parts.next().unwrap_or_default();
            let rest = parts.next().unwrap_or_default();
            let (name, actions) = rest.rsplit_once(':').unwrap_or((rest, ""));
            access.push(serde_json::json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }));
        }
    }
    let token = server.token(access);
    axum::Json(serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 }))
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_auth_against_a_token_enforcing_registry() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, token_flow())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "token auth test hung for {TEST_TIMEOUT:?}: token server, registry or client stuck"
            )
        })
}

async fn token_flow() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["token-issuer".to_string()])?;
    let cert_path = tmp.path().join("token-ca.pem");
    std::fs::write(&cert_path, cert.pem())?;
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &key_pair.serialize_der(),
        &rng,
    )
    .map_err(|e| anyhow::anyhow!("key: {e}"))?;
    let server = Arc::new(TokenServer {
        key,
        cert_der: cert.der().to_vec(),
        requests: AtomicUsize::new(0),
        authenticated: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let realm = format!("http://{}/token", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/token", axum::routing::get(issue))
        .with_state(server.clone());
    let serve = tokio::spawn(async move { axum::serve(listener, app).await });

    let auth_yaml = format!(
        "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
        cert_path.display()
    );
    let registry = TestRegistry::start_with(&auth_yaml)?;
    let tar = tmp.path().join("bb.tar");
    let built = testimage::build_busybox_oci_tar(&tar, "docker.io/library/busybox:latest")?;
    let creds = format!("{USER}:{PASSWORD}");
    // skopeo is blocking: run it off the runtime so the token server keeps answering.
    let registry = Arc::new(registry);
    {
        let (registry, tar) = (registry.clone(), tar.clone());
        tokio::task::spawn_blocking(move || {
            registry.push(&tar, "private/busybox:1", &["--dest-creds", &creds])
        })
        .await??;
    }
    assert!(
        server.authenticated.load(Ordering::SeqCst) > 0,
        "skopeo went through the token server"
    );

    let store = ImageStore::open(&tmp.path().join("store"))?;
    let opts = PullOptions {
        insecure_registries: vec![registry.addr.clone()],
    };
    let reference = format!("{}/private/busybox:1", registry.addr);

    // Anonymous: the token carries no access, the registry still says 401.
    let err = store.pull(&reference, None, &opts).await.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&registry.addr), "{err}");

    // Wrong password: the token server refuses.
    let wrong = RegistryAuth {
        username: Some(USER.into()),
        password: Some("nope".into()),
        ..Default::default()
    };
    let err = store
        .pull(&reference, Some(&wrong), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::TokenRequest { .. }), "{err}");
    assert!(err.to_string().contains(&realm), "{err}");

    let before = server.authenticated.load(Ordering::SeqCst);
    let auth = RegistryAuth {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        ..Default::default()
    };
    let image = store.pull(&reference, Some(&auth), &opts).await?;
    assert_eq!(image.id, built.config_digest);
    assert!(store.layer_dirs(&image)?[0].join("bin/busybox").is_file());
    // One token for the whole pull (manifest, config, layer), not one per request.
    assert_eq!(server.authenticated.load(Ordering::SeqCst), before + 1);

    // A registry token given directly (CRI registry_token) is used as the bearer token.
    let direct = server.token(vec![
        serde_json::json!({ "type": "repository", "name": "private/busybox", "actions": ["pull"] }),
    ]);
    let store2 = ImageStore::open(&tmp.path().join("store2"))?;
    let tok = RegistryAuth {
        registry_token: Some(direct),
        ..Default::default()
    };
    let requests = server.requests.load(Ordering::SeqCst);
    assert_eq!(
        store2.pull(&reference, Some(&tok), &opts).await?.id,
        image.id
    );
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        requests,
        "no token request needed"
    );
    serve.abort();
    Ok(())
}

/// bcrypt (cost 4) of "s3cret", as `htpasswd -B` writes it; distribution's htpasswd auth
/// accepts only bcrypt.
const HTPASSWD: &str = "alice:$2b$04$V1e3XJHBKLTK3Rg78Jnl4uj1wHr7wv0PY/TH7CJFJg.SdRcUKoqdS\n";

#[tokio::test]
async fn basic_auth_against_an_htpasswd_registry() -> anyhow::Result<()> {
    tokio::time::timeout(TEST_TIMEOUT, basic_flow())
        .await
        .unwrap_or_else(|_| {
            panic!("basic auth test hung for {TEST_TIMEOUT:?}: registry or client stuck")
        })
}

async fn basic_flow() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD)?;
    let registry = TestRegistry::start_with(&format!(
        "auth:\n  htpasswd:\n    realm: minik8s-test\n    path: {}\n",
        htpasswd.display()
    ))?;
    let tar = tmp.path().join("bb.tar");
    let built = testimage::build_busybox_oci_tar(&tar, "docker.io/library/busybox:latest")?;
    let creds = format!("{USER}:{PASSWORD}");
    registry.push(&tar, "private/busybox:1", &["--dest-creds", &creds])?;
    let store = ImageStore::open(&tmp.path().join("store"))?;
    let opts = PullOptions {
        insecure_registries: vec![registry.addr.clone()],
    };
    let reference = format!("{}/private/busybox:1", registry.addr);
    let err = store.pull(&reference, None, &opts).await.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    let wrong = RegistryAuth {
        username: Some(USER.into()),
        password: Some("nope".into()),
        ..Default::default()
    };
    let err = store
        .pull(&reference, Some(&wrong), &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    let auth = RegistryAuth {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        ..Default::default()
    };
    let image = store.pull(&reference, Some(&auth), &opts).await?;
    assert_eq!(image.id, built.config_digest);
    Ok(())
}
