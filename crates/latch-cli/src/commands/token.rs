//! `latch token …`.

use latch_client::ClientError;
use latch_client::protocol::{BEARER, ErrorCode, Sensitive};
use serde_json::json;

use super::Ctx;
use crate::cli::TokenCommand;
use crate::fail::{Failure, Outcome};
use crate::ui;

pub(crate) async fn run(ctx: &mut Ctx, cmd: TokenCommand) -> Outcome {
    match cmd {
        TokenCommand::List { user } => {
            let user = ctx.resolve_user(&user).await?;
            let tokens = ctx.client.list_tokens(&user.id).await?;
            if ctx.json {
                ui::json(&serde_json::Value::Array(
                    tokens.iter().map(ui::token_json).collect(),
                ));
            } else if tokens.is_empty() {
                ui::out(format!("{} has no tokens", ui::name(&user)));
            } else {
                ui::out(ui::tokens_table(&tokens));
            }
            Ok(())
        }
        TokenCommand::Validate { token } => validate(ctx, &token).await,
        TokenCommand::Refresh {
            refresh_token,
            client_id,
            no_client_id,
        } => {
            let refresh_token = argument_or_stdin(&refresh_token, "the refresh token")?;
            let client_id = (!no_client_id).then_some(client_id.as_str());
            let access = match ctx
                .client
                .refresh(refresh_token.expose(), client_id, None)
                .await
            {
                Ok(access) => access,
                Err(ClientError::Api {
                    code: ErrorCode::InvalidRequest,
                    message,
                }) if message.starts_with("client id does not match") => {
                    let asked = client_id.map_or_else(
                        || "no client id (--no-client-id)".to_owned(),
                        |id| format!("client id {id:?}"),
                    );
                    return Err(Failure::Usage(format!(
                        "{message}; it was refreshed with {asked}: pass --client-id with the \
                         client it was issued to, or --no-client-id"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            if ctx.json {
                ui::json(&json!({
                    "access_token": access.access_token.expose(),
                    "token_type": BEARER,
                    "expires_in": access.expires_in,
                }));
            } else {
                ui::out(access.access_token.expose());
            }
            Ok(())
        }
        TokenCommand::Revoke { id, token } => {
            let what = match (id, token) {
                (Some(id), _) => {
                    ctx.client.revoke_by_id(&id).await?;
                    json!({ "refresh_token_id": id, "result": "revoked" })
                }
                (None, Some(token)) => {
                    let token = argument_or_stdin(&token, "the refresh token")?;
                    ctx.client.revoke(token.expose()).await?;
                    json!({ "result": "revoked" })
                }
                (None, None) => {
                    return Err(Failure::Usage("pass --id or --token".to_owned()));
                }
            };
            if ctx.json {
                ui::json(&what);
            } else {
                ui::out("revoked");
            }
            Ok(())
        }
        TokenCommand::CreateLongLived { user, name, days } => {
            let user = ctx.resolve_user(&user).await?;
            let token = ctx
                .client
                .create_long_lived_token(&user.id, &name, None, days)
                .await?;
            if ctx.json {
                ui::json(&json!({
                    "user_id": user.id,
                    "refresh_token_id": token.refresh_token_id,
                    "access_token": token.access_token.expose(),
                    "token_type": BEARER,
                    "expires_in": token.expires_in,
                }));
            } else {
                ui::note(format!(
                    "long-lived token {name:?} for {} (refresh token id {}), valid {days} days; \
                     it is shown only now, store it somewhere safe:",
                    ui::name(&user),
                    token.refresh_token_id
                ));
                ui::out(token.access_token.expose());
            }
            Ok(())
        }
    }
}

/// `latch token validate`: exit 0 and the user if valid, exit 1 if not.
async fn validate(ctx: &Ctx, token: &str) -> Outcome {
    let token = argument_or_stdin(token, "the access token")?;
    match ctx.client.validate_token(token.expose()).await {
        Ok(valid) => {
            if ctx.json {
                ui::json(&json!({
                    "valid": true,
                    "user": ui::user_summary_json(&valid.user),
                    "refresh_token_id": valid.refresh_token_id,
                    "token_type": valid.token_type.as_str(),
                }));
            } else {
                ui::out(format!(
                    "valid: user {} ({}), refresh token {} ({})",
                    valid.user.name.as_deref().unwrap_or("-"),
                    valid.user.id,
                    valid.refresh_token_id,
                    valid.token_type
                ));
            }
            Ok(())
        }
        Err(ClientError::Api {
            code: code @ (ErrorCode::InvalidToken | ErrorCode::Forbidden),
            message,
        }) => {
            if ctx.json {
                ui::json(&json!({
                    "valid": false,
                    "error": crate::fail::error_object(code.as_str(), &message),
                }));
            } else {
                ui::out(format!("invalid: {message}"));
            }
            Err(Failure::Silent(latch_client::exit::DENIED))
        }
        Err(e) => Err(e.into()),
    }
}

/// A secret given on the command line, or read from stdin when it is `-` (keeps it out
/// of the process list and shell history).
fn argument_or_stdin(value: &str, what: &str) -> Result<Sensitive, Failure> {
    if value != "-" {
        return Ok(Sensitive::from(value));
    }
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) => Err(Failure::Usage(format!("stdin is empty: no {what} to read"))),
        Ok(_) => Ok(Sensitive::from(line.trim().to_owned())),
        Err(e) => Err(Failure::Usage(format!(
            "cannot read {what} from stdin: {e}"
        ))),
    }
}
