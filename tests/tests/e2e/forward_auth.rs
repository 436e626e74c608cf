//! Forward-auth through a real nginx: `crates/latch-http/docs/nginx.conf` (the file the
//! README shows) in front of an upstream app that echoes the `Remote-*` headers it
//! receives, latch-http deciding with `auth_request`, and an HTTP client that keeps
//! cookies as a browser does.

use std::sync::Arc;

use latch_client::NewUser;
use latch_tests::web::{EchoApp, Nginx, documented_nginx_site, free_port};
use latch_tests::{Home, block_on};
use reqwest::cookie::{CookieStore as _, Jar};

use super::http_support::{PASSWORD, ha_users, next_totp};

/// latch.toml: the password provider, nginx as the trusted proxy, the sign-in page on
/// nginx's own address (plain http on loopback, so the cookie is not `Secure`), admins
/// with a second factor for `/admin/*`, every signed-in user elsewhere.
fn config(nginx_port: u16) -> String {
    format!(
        "shutdown_grace_secs = 5\n\
         [[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_cost = 4\n\
         [http]\nuse_x_forwarded_for = true\ntrusted_proxies = [\"127.0.0.1\"]\n\
         public_url = \"http://127.0.0.1:{nginx_port}\"\n\
         [[http.access]]\npath = \"/admin/*\"\ngroups = [\"system-admin\"]\nsecond_factor = true\n\
         [[http.access]]\npath = \"*\"\n"
    )
}

/// A browser-like client: keeps cookies, does not follow redirects (the test does).
struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
}

/// An answer, read whole.
struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Vec<String>,
    body: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        Self {
            client,
            jar,
            base: base.to_owned(),
        }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.base)
        }
    }

    async fn read(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = response.text().await.unwrap();
        Page {
            status,
            location,
            set_cookie,
            body,
        }
    }

    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.client.get(self.absolute(url));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        block_on(async { Self::read(request.send().await.unwrap()).await })
    }

    fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let request = self.client.post(self.absolute(url)).form(form);
        block_on(async { Self::read(request.send().await.unwrap()).await })
    }

    /// The session cookie's value.
    fn session(&self) -> Option<String> {
        let url = self.base.parse().unwrap();
        let cookies = self.jar.cookies(&url)?;
        cookies
            .to_str()
            .unwrap()
            .split(';')
            .filter_map(|c| c.trim().strip_prefix("latch_session="))
            .map(str::to_owned)
            .next()
    }
}

/// A hidden input's value in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} in {page}"))
        + marker.len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end]
        .replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
}

/// Submits the sign-in page's form with `fields` (`f_` names); returns the answer.
fn submit(browser: &Browser, page: &str, fields: &[(&str, &str)]) -> Page {
    let flow_id = hidden(page, "flow_id");
    let csrf = hidden(page, "csrf");
    let rd = if page.contains(r#"name="rd""#) {
        hidden(page, "rd")
    } else {
        String::new()
    };
    let mut form = vec![
        ("flow_id", flow_id.as_str()),
        ("csrf", csrf.as_str()),
        ("rd", rd.as_str()),
    ];
    form.extend_from_slice(fields);
    browser.post("/auth/signin", &form)
}

/// Opens `path`, follows the redirect to the sign-in page, signs in with the password
/// (and the TOTP code when `secret` is given), and returns where the browser is sent.
fn sign_in(browser: &Browser, path: &str, username: &str, secret: Option<&str>) -> Page {
    let first = browser.get(path, &[]);
    assert_eq!(first.status, 302, "{}", first.body);
    let signin = browser.get(first.location.as_deref().unwrap(), &[]);
    assert_eq!(signin.status, 200, "{}", signin.body);
    let answer = submit(
        browser,
        &signin.body,
        &[("f_username", username), ("f_password", PASSWORD)],
    );
    match secret {
        Some(secret) => {
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert!(
                answer.body.contains("Two-step verification"),
                "{}",
                answer.body
            );
            submit(browser, &answer.body, &[("f_code", &next_totp(secret))])
        }
        None => answer,
    }
}

#[test]
fn nginx_sends_strangers_to_sign_in_and_passes_the_signed_in_user_to_the_app() {
    let port = free_port();
    let home = Home::empty();
    home.write_config(&config(port));
    let _daemon = home.start();
    let users = ha_users(&home.client());
    let door = home.start_http(&[]);
    let app = EchoApp::start();
    let nginx = Nginx::start(&documented_nginx_site(door.addr(), app.addr()), port);
    let base = nginx.base();
    let browser = Browser::new(&base);

    // A stranger is sent to the sign-in page with the original URL to return to, and
    // the app never sees the request, forged Remote-User or not.
    let stranger = browser.get("/notes?x=1&y=2", &[("Remote-User", "paulus")]);
    assert_eq!(stranger.status, 302, "{}", stranger.body);
    let location = stranger.location.clone().unwrap();
    assert_eq!(
        location,
        format!("{base}/auth/signin?rd=http%3A%2F%2F127.0.0.1%3A{port}%2Fnotes%3Fx%3D1%26y%3D2")
    );
    assert!(app.seen().is_empty(), "{:?}", app.seen());

    // The sign-in page: CSP with frame-ancestors, a CSRF token, the password form.
    let signin = browser.get(&location, &[]);
    assert_eq!(signin.status, 200, "{}", signin.body);
    assert!(
        signin
            .body
            .contains(r#"<label for="f_password">Password</label>"#)
    );
    assert!(signin.body.contains(r#"action="/auth/signin""#));
    let csrf = hidden(&signin.body, "csrf");
    assert_eq!(csrf.len(), 64, "{csrf}");
    // A form without its CSRF token is refused and changes nothing.
    let forged = browser.post(
        "/auth/signin",
        &[
            ("flow_id", &hidden(&signin.body, "flow_id")),
            ("csrf", &"0".repeat(64)),
            ("f_username", "anne"),
            ("f_password", PASSWORD),
        ],
    );
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert!(browser.session().is_none());

    // Password, then the TOTP step, then back to the original URL with the cookie.
    let mfa = submit(
        &browser,
        &signin.body,
        &[("f_username", "anne"), ("f_password", PASSWORD)],
    );
    assert_eq!(mfa.status, 200, "{}", mfa.body);
    assert!(mfa.body.contains("Two-step verification"), "{}", mfa.body);
    assert!(
        browser.session().is_none(),
        "no session before the second factor"
    );
    let done = submit(
        &browser,
        &mfa.body,
        &[("f_code", &next_totp(&users.anne_secret))],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("{base}/notes?x=1&y=2").as_str())
    );
    let cookie = done
        .set_cookie
        .iter()
        .find(|c| c.starts_with("latch_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback, explicitly: {cookie}"
    );
    let session = browser.session().unwrap();

    // The protected page loads; the app sees who signed in, not what the client forged,
    // and the browser's other cookies but never the session cookie.
    browser
        .jar
        .add_cookie_str("theme=dark; Path=/", &base.parse().unwrap());
    let page = browser.get("/notes?x=1&y=2", &[("Remote-User", "paulus")]);
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = app.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/notes?x=1&y=2");
    assert_eq!(last.values("remote-user"), vec!["anne"]);
    assert_eq!(last.values("remote-name"), vec!["Anne"]);
    assert_eq!(last.values("remote-groups"), vec!["system-admin"]);
    let cookies = last.values("cookie");
    assert!(cookies.iter().any(|c| c.contains("theme=dark")), "{last:?}");
    assert!(cookies.iter().all(|c| !c.contains(&session)), "{last:?}");
    // Admin pages want admins with a second factor: Anne is both.
    let admin = browser.get("/admin/settings", &[]);
    assert_eq!(admin.status, 200, "{}", admin.body);

    // Revoked from the command line: the next request is refused.
    home.run(&["token", "revoke", "--token", "-"], &[&session])
        .assert_code(0);
    let after = browser.get("/notes", &[]);
    assert_eq!(after.status, 302, "{}", after.body);
    assert!(
        after
            .location
            .as_deref()
            .unwrap()
            .starts_with(&format!("{base}/auth/signin?rd=")),
        "{:?}",
        after.location
    );
    assert_eq!(
        app.seen().len(),
        seen.len() + 1,
        "only the two allowed pages"
    );
    assert!(
        nginx.error_log().contains("nginx"),
        "nginx ran with its own log"
    );
}

#[test]
fn groups_second_factor_deactivation_and_bearer_tokens_through_nginx() {
    let port = free_port();
    let home = Home::empty();
    home.write_config(&config(port));
    let _daemon = home.start();
    let client = home.client();
    let users = ha_users(&client);
    let guest_id = block_on(async {
        let guest = client
            .create_user(NewUser {
                group_ids: Some(vec!["system-users".into()]),
                ..NewUser::new("Guest")
            })
            .await
            .unwrap();
        client
            .add_password(&guest.id, "guest", PASSWORD)
            .await
            .unwrap();
        guest.id
    });
    let door = home.start_http(&[]);
    let app = EchoApp::start();
    let nginx = Nginx::start(&documented_nginx_site(door.addr(), app.addr()), port);
    let base = nginx.base();

    // A user outside the admin group: the app, yes; admin pages, 403.
    let guest = Browser::new(&base);
    let signed_in = sign_in(&guest, "/", "guest", None);
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(guest.get("/", &[]).status, 200);
    let refused = guest.get("/admin/", &[]);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        app.seen().last().unwrap().values("remote-user"),
        vec!["guest"]
    );

    // An admin without a second factor: admin pages stay closed.
    let paulus = Browser::new(&base);
    assert_eq!(sign_in(&paulus, "/", "paulus", None).status, 303);
    assert_eq!(paulus.get("/", &[]).status, 200);
    assert_eq!(paulus.get("/admin/", &[]).status, 403);

    // Deactivated from the command line: the next request is refused.
    home.run(&["user", "deactivate", "guest"], &[])
        .assert_code(0);
    let after = guest.get("/", &[]);
    assert_eq!(after.status, 302, "{}", after.body);
    assert!(block_on(client.get_user(&guest_id)).is_ok());

    // A long-lived access token as a bearer token: the app sees its user; garbage is
    // sent to sign in.
    let token =
        block_on(client.create_long_lived_token(&users.ids["paulus"], "nas", None, 30)).unwrap();
    let stateless = Browser::new(&base);
    let bearer = format!("Bearer {}", token.access_token.expose());
    let page = stateless.get("/files", &[("Authorization", &bearer)]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        app.seen().last().unwrap().values("remote-user"),
        vec!["paulus"]
    );
    let garbage = stateless.get("/files", &[("Authorization", "Bearer nope")]);
    assert_eq!(garbage.status, 302);
}

#[test]
fn the_readme_shows_the_tested_nginx_file_verbatim() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let nginx = std::fs::read_to_string(root.join("crates/latch-http/docs/nginx.conf")).unwrap();
    assert!(
        readme.contains(&format!("```nginx\n{nginx}```")),
        "README's nginx block differs from crates/latch-http/docs/nginx.conf"
    );
}

#[test]
fn check_config_names_unreachable_and_overlapping_access_rules() {
    let home = Home::empty();
    home.write_config(
        "[http]\n\
         [[http.access]]\nhost = \"*.home.example\"\n\
         [[http.access]]\nhost = \"grafana.*\"\npath = \"/api/*\"\n\
         [[http.access]]\nhost = \"grafana.home.example\"\npath = \"/admin/*\"\n",
    );
    latch_tests::run(home.latch_http(&["--check-config"]), &[])
        .assert_code(2)
        .assert_stderr_has("warning: the access rule at line 4 overlaps the rule at line 2")
        .assert_stderr_has(
            "error: the access rule at line 7 is unreachable: the rule at line 2 comes first",
        );
    // In the other order nothing is shadowed; the partial overlap is only a warning.
    home.write_config(
        "[http]\n\
         [[http.access]]\nhost = \"grafana.home.example\"\npath = \"/admin/*\"\n\
         [[http.access]]\nhost = \"grafana.*\"\npath = \"/api/*\"\n\
         [[http.access]]\nhost = \"*.home.example\"\n",
    );
    latch_tests::run(home.latch_http(&["--check-config"]), &[])
        .assert_code(0)
        .assert_stderr_has("warning: the access rule at line 8 overlaps the rule at line 5")
        .assert_stdout_has("configuration ok");
}
