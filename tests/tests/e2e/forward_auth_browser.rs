//! Forward-auth in a real browser: headless chromium, driven through chromedriver
//! (WebDriver), opens a page behind nginx and latch-http, lands on the sign-in page,
//! types the password and the current TOTP code, arrives back at the page, and signs
//! out; on a phone-wide window (360 px). Screenshots of the sign-in page and of the TOTP
//! step are saved under `target/forward-auth-screenshots/`.

use std::time::Duration;

use fantoccini::{Client, Locator};
use latch_tests::web::{Browser, EchoApp, Nginx, documented_nginx_site, free_port, target_dir};
use latch_tests::{Home, runtime};

use super::http_support::{PASSWORD, ha_users, next_totp};

/// How long a page may take to appear.
const PAGE_WAIT: Duration = Duration::from_secs(20);

/// How long the whole browser session may take (chromium's start included).
const SESSION_DEADLINE: Duration = Duration::from_secs(180);

fn config(nginx_port: u16) -> String {
    format!(
        "shutdown_grace_secs = 5\n\
         [[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_cost = 4\n\
         [http]\nuse_x_forwarded_for = true\ntrusted_proxies = [\"127.0.0.1\"]\n\
         public_url = \"http://127.0.0.1:{nginx_port}\"\n\
         [[http.access]]\npath = \"*\"\n"
    )
}

/// The page fits the window: nothing wider than the viewport (no sideways scrolling),
/// and the text is at least 14 px.
async fn assert_fits(browser: &Client, width: u64) {
    let layout = browser
        .execute(
            "return [window.innerWidth, document.documentElement.scrollWidth, \
             parseFloat(getComputedStyle(document.body).fontSize)];",
            vec![],
        )
        .await
        .unwrap();
    let values: Vec<f64> = layout
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let (inner, scroll, font) = (values[0], values[1], values[2]);
    assert!(
        inner <= width as f64,
        "window {inner} px wide, wanted {width}"
    );
    assert!(
        scroll <= inner,
        "the page is {scroll} px wide in a {inner} px window"
    );
    assert!(font >= 14.0, "body text {font} px");
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = target_dir().join("forward-auth-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[test]
fn a_browser_signs_in_with_totp_reaches_the_page_and_signs_out() {
    let port = free_port();
    let home = Home::empty();
    home.write_config(&config(port));
    let _daemon = home.start();
    let users = ha_users(&home.client());
    let door = home.start_http(&[]);
    let app = EchoApp::start();
    let nginx = Nginx::start(&documented_nginx_site(door.addr(), app.addr()), port);
    let base = nginx.base();
    let chromedriver = Browser::start();

    let walk = async {
        let browser = chromedriver.session(360, 800).await;

        // The protected page sends the browser to the sign-in page.
        browser.goto(&format!("{base}/notes")).await.unwrap();
        let username = browser
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css("#f_username"))
            .await
            .unwrap();
        let url = browser.current_url().await.unwrap();
        assert_eq!(url.path(), "/auth/signin", "{url}");
        assert!(
            url.query().unwrap().contains("rd="),
            "the return address is carried: {url}"
        );
        assert_fits(&browser, 360).await;
        screenshot(&browser, "signin.png").await;

        // Password, then the TOTP step.
        username.send_keys("anne").await.unwrap();
        browser
            .find(Locator::Css("#f_password"))
            .await
            .unwrap()
            .send_keys(PASSWORD)
            .await
            .unwrap();
        browser
            .find(Locator::Css("button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let code = browser
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css("#f_code"))
            .await
            .unwrap();
        let source = browser.source().await.unwrap();
        assert!(source.contains("Two-step verification"), "{source}");
        assert_fits(&browser, 360).await;
        screenshot(&browser, "totp.png").await;
        code.send_keys(&next_totp(&users.anne_secret))
            .await
            .unwrap();
        browser
            .find(Locator::Css("button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        // Back at the protected page, which the app served to Anne.
        browser
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::XPath("//pre[contains(., 'remote-user: anne')]"))
            .await
            .unwrap();
        let url = browser.current_url().await.unwrap();
        assert_eq!(url.as_str(), format!("{base}/notes"));
        // The session cookie is not readable from the page's scripts (HttpOnly).
        let visible = browser
            .execute("return document.cookie;", vec![])
            .await
            .unwrap();
        assert!(
            !visible
                .as_str()
                .unwrap_or_default()
                .contains("latch_session"),
            "{visible}"
        );

        // Sign out.
        browser.goto(&format!("{base}/auth/signout")).await.unwrap();
        let button = browser
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css("button[type=submit]"))
            .await
            .unwrap();
        assert!(browser.source().await.unwrap().contains("Anne"));
        assert_fits(&browser, 360).await;
        button.click().await.unwrap();
        browser
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::XPath("//p[contains(., 'You are signed out.')]"))
            .await
            .unwrap();

        // The page is closed again.
        browser.goto(&format!("{base}/notes")).await.unwrap();
        browser
            .wait()
            .at_most(PAGE_WAIT)
            .for_element(Locator::Css("#f_username"))
            .await
            .unwrap();
        assert_eq!(browser.current_url().await.unwrap().path(), "/auth/signin");
        browser.close().await.unwrap();
    };
    runtime()
        .block_on(async { tokio::time::timeout(SESSION_DEADLINE, walk).await })
        .unwrap_or_else(|_| panic!("the browser session took longer than {SESSION_DEADLINE:?}"));
    let served: Vec<_> = app
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/notes"))
        .map(|s| s.values("remote-user").join(","))
        .collect();
    assert_eq!(
        served,
        vec!["anne"],
        "the app served the page once, to Anne"
    );
}
