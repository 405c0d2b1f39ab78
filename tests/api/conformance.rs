//! Answers that .ci/conformance (schemathesis against openapi.yaml) found out of line with the
//! spec or with HTTP itself, kept fixed here.

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_method_a_path_does_not_serve_gets_405_with_the_methods_it_does_in_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        ("TRACE", "/api/v1/staff", "GET, POST"),
        ("DELETE", "/api/v1/subscribe", "POST"),
        ("PUT", "/api/v1/fields/city", "GET, PATCH, DELETE"),
        ("HEAD", "/api/v1/staff/me/password", "PUT"),
        ("POST", "/healthz", "GET"),
        ("PATCH", "/confirm/abc", "GET, POST"),
    ] {
        let res = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn an_unknown_query_parameter_on_the_delivery_log_is_a_400_problem() {
    let app = spawn_app().await;
    let token = app.staff_token(enlace::auth::Role::Admin).await;
    let res = app
        .get_as(
            &token,
            "/api/v1/webhooks/01a2342e-2638-7251-8d08-b5aade894ab4/deliveries?colour=red",
        )
        .await;
    // openapi.yaml lists 400 for this operation since the conformance run met it.
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}
