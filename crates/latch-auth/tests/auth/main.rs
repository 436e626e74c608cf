//! Integration tests of the AuthManager: Home Assistant's auth scenarios (reference §14,
//! `tests/auth/test_init.py` and friends) and latch's additions, against a real store in
//! a temporary directory and a fixed clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod atomic;
mod code_flows;
mod common;
mod config;
mod events;
mod flows;
mod limits;
mod own_password;
mod permissions;
mod pin;
mod story;
mod throttling;
mod tokens;
mod users;
mod work;
