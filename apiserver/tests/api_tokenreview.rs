//! TokenReview (authentication.k8s.io/v1): what a nodelet asks to authenticate its callers.

mod support;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use serde_json::json;
use support::{raw_request, within, TestServer};

fn review(token: &str) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: token.into(),
            audiences: None,
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn tokenreview_tells_good_tokens_from_bad() {
    within(60, "TokenReview requests hung", async {
        let srv = TestServer::start().await;
        let api: Api<TokenReview> = Api::all(srv.client.clone());
        let pp = PostParams::default();

        let admin = api.create(&pp, &review(&srv.token())).await.unwrap();
        let st = admin.status.unwrap();
        assert_eq!(st.authenticated, Some(true));
        let user = st.user.unwrap();
        assert_eq!(user.username.as_deref(), Some("system:admin"));
        assert!(user.groups.unwrap().contains(&"system:masters".to_string()));

        let node_token = std::fs::read_to_string(srv.dir.path().join("node-token")).unwrap();
        let node = api.create(&pp, &review(node_token.trim())).await.unwrap();
        let st = node.status.unwrap();
        assert_eq!(st.authenticated, Some(true));
        let user = st.user.unwrap();
        assert_eq!(user.username.as_deref(), Some("system:minik8s-node"));
        assert!(user.groups.unwrap().contains(&"system:nodes".to_string()));

        for bad in ["not-a-token", &srv.token()[1..]] {
            let r = api.create(&pp, &review(bad)).await.unwrap();
            let st = r.status.unwrap();
            assert_eq!(st.authenticated, Some(false), "token {bad:?}");
            assert!(st.user.is_none_or(|u| u.username.is_none()));
        }

        // An empty token is a bad request, as kube-apiserver says.
        let path = "/apis/authentication.k8s.io/v1/tokenreviews";
        let body = serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview", "spec": {"token": ""}}))
        .unwrap();
        let (code, status) = raw_request(
            &srv.client,
            "POST",
            path,
            Some("application/json"),
            body.clone(),
        )
        .await;
        assert_eq!(code, 400);
        assert_eq!(
            status["message"],
            "token is required for TokenReview in authentication"
        );
        let (code, _) = raw_request(&srv.client, "GET", path, None, vec![]).await;
        assert_eq!(code, 405);

        // Only authenticated callers may ask.
        let kc = srv.kubeconfig();
        let text = std::fs::read_to_string(&kc)
            .unwrap()
            .replace(&srv.token(), "wrong-token");
        let bad_kc = srv.dir.path().join("bad.kubeconfig");
        std::fs::write(&bad_kc, text).unwrap();
        let anon = support::client_for(&bad_kc).await;
        let err = Api::<TokenReview>::all(anon)
            .create(&pp, &review(&srv.token()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, kube::Error::Api(s) if s.code == 401),
            "unauthenticated caller: {err}"
        );
    })
    .await;
}
