//! Signing in to the console over a real `custos serve`, as a browser does: the sign-in form's
//! pre-login secret, an API key alone for a member without a second factor, the code a member
//! with one must add, keys of another org and wrong keys refused on the form; the session
//! cookie's attributes; forms without the session's CSRF token or from another site change
//! nothing; sign-out ends the session.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};

use support::{cli, org_with_owner, post, send, serve};

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of `name` in a response's `Set-Cookie` headers, with the whole header.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<(String, String)> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap().to_string();
            (value, v)
        })
}

/// Posts the sign-in form with a fresh pre-login secret; the response.
async fn sign_in(base: &str, org: &str, key: &str, code: &str) -> reqwest::Response {
    let page = browser()
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let (secret, attributes) = set_cookie(&page, "custos_console_login").unwrap();
    assert!(
        attributes.contains("HttpOnly") && attributes.contains("SameSite=Strict"),
        "{attributes}"
    );
    let html = page.text().await.unwrap();
    for label in ["Organization", "API key", "Code"] {
        assert!(html.contains(&format!(">{label}</label>")), "{label}");
    }
    browser()
        .post(format!("{base}/console/login"))
        .header("cookie", format!("custos_console_login={secret}"))
        .form(&[
            ("csrf", secret.as_str()),
            ("org", org),
            ("api_key", key),
            ("code", code),
            ("via", "key"),
        ])
        .send()
        .await
        .unwrap()
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a form");
    html[at + 19..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn people_sign_in_with_a_key_and_a_code_and_forms_need_the_sessions_token() {
    let tmp = tempfile::tempdir().unwrap();
    let s = serve(cli(&tmp.path().join("data")), &[]).await;
    let (org, owner) = org_with_owner(&s, "Acme Notes").await;
    let (other, other_owner) = org_with_owner(&s, "Other Org").await;
    let auditor: Value = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({"name": "Ada", "roles": ["auditor"]}),
    )
    .await;
    let auditor_key = auditor["api_key"].as_str().unwrap();

    // A member without a second factor: the key alone, by the org's name; a session cookie,
    // and back to the org's overview.
    let r = sign_in(&s.base, "Acme Notes", auditor_key, "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/console/{org}").as_str());
    let (session, attributes) = set_cookie(&r, "custos_session").unwrap();
    assert!(session.starts_with("cuss_"), "a session token, not the key");
    assert!(
        attributes.contains("HttpOnly")
            && attributes.contains("Secure")
            && attributes.contains("SameSite=Lax"),
        "{attributes}"
    );
    let cookie = format!("custos_session={session}");
    let overview = browser()
        .get(format!("{}/console/{org}", s.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), StatusCode::OK);
    let csp = overview.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(overview.headers()["x-frame-options"], "DENY");
    // The session reaches this org only: another org's page answers as the API does for it
    // (not found: nothing says the org exists).
    let elsewhere = browser()
        .get(format!("{}/console/{other}/requests", s.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let (api, _) = send(
        &s,
        reqwest::Method::GET,
        &session,
        &format!("/v1/orgs/{other}/requests"),
        None,
    )
    .await;
    assert_eq!(elsewhere.status().as_u16(), api);
    assert_eq!(api, 404);

    // A member with a second factor must add its code; a key of another org and a wrong key
    // are refused on the form, saying nothing about which.
    post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/members/me/totp"),
        json!({}),
    )
    .await;
    let r = sign_in(&s.base, &org, &owner, "").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("enter the current code"));
    for key in [other_owner.as_str(), "cus_not-a-key"] {
        let r = sign_in(&s.base, &org, key, "").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{key}");
        assert!(set_cookie(&r, "custos_session").is_none());
        assert!(r
            .text()
            .await
            .unwrap()
            .contains("not a key of this organization"));
    }
    // Without the pre-login secret the form changes nothing.
    let r = browser()
        .post(format!("{}/console/login", s.base))
        .form(&[
            ("csrf", "forged"),
            ("org", org.as_str()),
            ("api_key", auditor_key),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&r, "custos_session").is_none());

    // Forms need the page's CSRF token and this origin: an admin without a second factor
    // places a hold.
    let admin: Value = post(
        &s,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({"name": "Abe", "roles": ["admin"]}),
    )
    .await;
    let r = sign_in(&s.base, &org, admin["api_key"].as_str().unwrap(), "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = format!(
        "custos_session={}",
        set_cookie(&r, "custos_session").unwrap().0
    );
    let holds = format!("{}/console/{org}/holds", s.base);
    let page = browser()
        .get(&holds)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let place = |token: &str, origin: &str| {
        browser()
            .post(&holds)
            .header("cookie", &cookie)
            .header("origin", origin)
            .form(&[
                ("csrf", token),
                ("reason", "Litigation 42"),
                ("category", ""),
            ])
            .send()
    };
    let host = s.base.clone();
    assert_eq!(
        place("", &host).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        place(&csrf, "https://evil.example").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let (_, listed) = send(
        &s,
        reqwest::Method::GET,
        &owner,
        &format!("/v1/orgs/{org}/holds"),
        None,
    )
    .await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        0,
        "refused forms placed nothing"
    );
    let placed = place(&csrf, &host).await.unwrap();
    assert_eq!(placed.status(), StatusCode::SEE_OTHER);
    let (_, listed) = send(
        &s,
        reqwest::Method::GET,
        &owner,
        &format!("/v1/orgs/{org}/holds"),
        None,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Sign-out ends the session: its pages send the browser to sign-in again.
    let out = browser()
        .post(format!("{}/console/logout", s.base))
        .header("cookie", &cookie)
        .header("origin", &host)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = browser()
        .get(&holds)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert!(after.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/console/login?return_to="));
}
