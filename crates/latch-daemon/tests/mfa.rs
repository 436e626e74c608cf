//! TOTP enrolment and a two-step login through the daemon, on an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::{Client, OWNER_PASSWORD, config, home};
use latch_daemon::DaemonOptions;
use latch_models::FixedClock;
use latch_protocol::{ErrorCode, FlowState, Request, Response, Sensitive, SetupFlowState};

fn totp_code(secret: &str, at: DateTime<Utc>) -> String {
    let key = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(key).build().unwrap();
    totp.generate(u64::try_from(at.timestamp()).unwrap())
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_totp_then_log_in_with_a_code() {
    let home = home();
    let t0 = Utc.with_ymd_and_hms(2030, 5, 1, 12, 0, 0).unwrap();
    let clock = Arc::new(FixedClock::new(t0));
    let mut options = DaemonOptions::new(home.path(), config(4, ""));
    options.clock = Some(clock.clone());
    let daemon = latch_daemon::start(options).await.unwrap();
    let mut client = Client::to(&daemon).await;
    let owner = client.onboard("owner", OWNER_PASSWORD).await;

    let Response::SetupFlow(SetupFlowState::Form(form)) = client
        .ok(Request::MfaSetupStart {
            user_id: owner.id.clone(),
            module_id: "totp".into(),
        })
        .await
    else {
        panic!("no setup form")
    };
    let secret = form.placeholder("code").unwrap().expose().to_owned();
    assert!(
        form.placeholder("url")
            .unwrap()
            .expose()
            .starts_with("otpauth://totp/")
    );
    let done = client
        .ok(Request::MfaSetupContinue {
            flow_id: form.flow_id.clone(),
            input: vec![("code".into(), Sensitive::new(totp_code(&secret, t0)))],
        })
        .await;
    let Response::SetupFlow(SetupFlowState::Done {
        module_id,
        recovery_codes,
        ..
    }) = done
    else {
        panic!("{done:?}")
    };
    assert_eq!(module_id, "totp", "the answer names the module enrolled");
    assert_eq!(recovery_codes.len(), 10);
    let Response::MfaModules(modules) = client
        .ok(Request::ListMfaModules {
            user_id: owner.id.clone(),
        })
        .await
    else {
        panic!("no modules")
    };
    assert!(modules.iter().any(|m| m.id == "totp" && m.enabled));

    // The password step leads to the code step.
    clock.advance(TimeDelta::seconds(60));
    let flow_id = client.login_start().await;
    let step = client
        .ok(Client::login_continue(&flow_id, "owner", OWNER_PASSWORD))
        .await;
    let Response::Flow(FlowState::Form(mfa)) = step else {
        panic!("{step:?}")
    };
    assert_eq!(mfa.step_id, "mfa");
    let code = totp_code(&secret, t0 + TimeDelta::seconds(60));
    let done = client
        .ok(Request::LoginContinue {
            flow_id,
            input: vec![("code".into(), Sensitive::new(code))],
            ip_address: common::local(),
        })
        .await;
    let Response::Flow(FlowState::Done { tokens, .. }) = done else {
        panic!("{done:?}")
    };
    assert_eq!(tokens.user_id, owner.id);

    let Response::RecoveryCodes(codes) = client
        .ok(Request::RegenerateRecoveryCodes {
            user_id: owner.id.clone(),
            module_id: "totp".into(),
        })
        .await
    else {
        panic!("no recovery codes")
    };
    assert_eq!(codes.len(), 10);
    client
        .ok(Request::MfaDisable {
            user_id: owner.id.clone(),
            module_id: "totp".into(),
        })
        .await;
    let err = client
        .call(Request::RegenerateRecoveryCodes {
            user_id: owner.id.clone(),
            module_id: "totp".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    let err = client
        .call(Request::MfaSetupStart {
            user_id: owner.id,
            module_id: "sms".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::MfaModuleNotFound);
    daemon.shutdown().await.unwrap();
}
