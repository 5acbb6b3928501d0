//! Slack's Web API (`chat.postMessage`) and slash command verification.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{IntegrationError, base_url, http_client, json, send};
use crate::signature::Secret;
use crate::verify::{HeaderSource, Verified, Verifier, VerifyError};

const SERVICE: &str = "Slack";
/// Slack's Web API.
const DEFAULT_BASE: &str = "https://slack.com/api";

/// A Slack client with a bot token, and optionally the app's signing secret
/// to verify requests Slack sends (slash commands, interactivity).
#[derive(Debug, Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    verifier: Option<Verifier>,
}

/// A message for `chat.postMessage`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SlackMessage {
    /// Channel id or name (`#engineering`, `C1234567890`).
    pub channel: String,
    /// The text (the notification text when blocks are given).
    pub text: String,
    /// Block Kit blocks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Value>,
    /// Reply in this thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
}

impl SlackMessage {
    /// A text message to `channel`.
    pub fn new(channel: impl Into<String>, text: impl Into<String>) -> SlackMessage {
        SlackMessage {
            channel: channel.into(),
            text: text.into(),
            ..SlackMessage::default()
        }
    }
    /// Sets the Block Kit blocks.
    pub fn blocks(mut self, blocks: impl IntoIterator<Item = Value>) -> SlackMessage {
        self.blocks = blocks.into_iter().collect();
        self
    }
    /// Replies in a thread.
    pub fn thread(mut self, ts: impl Into<String>) -> SlackMessage {
        self.thread_ts = Some(ts.into());
        self
    }
}

/// Where a posted message landed.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostedMessage {
    /// The channel id.
    pub channel: String,
    /// The message timestamp (its id within the channel).
    pub ts: String,
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(flatten)]
    rest: Value,
}

impl SlackClient {
    /// A client with a bot token (`xoxb-…`).
    pub fn new(bot_token: impl Into<Secret>) -> SlackClient {
        SlackClient {
            http: http_client(),
            base: DEFAULT_BASE.to_owned(),
            token: bot_token.into(),
            verifier: None,
        }
    }

    /// Another Web API base URL (a local stand-in in tests).
    pub fn base_url(mut self, url: &str) -> Result<SlackClient, IntegrationError> {
        self.base = base_url("Slack base URL", url)?;
        Ok(self)
    }

    /// The app's signing secret, for [`verify_request`](Self::verify_request).
    pub fn signing_secret(mut self, secret: impl Into<Secret>) -> SlackClient {
        self.verifier = Some(Verifier::slack(secret));
        self
    }

    /// Verifies a request from Slack (`X-Slack-Signature` over the raw body,
    /// timestamp within 5 minutes). Without a signing secret every request is
    /// refused with [`VerifyError::NoSecret`].
    pub fn verify_request(
        &self,
        headers: &(impl HeaderSource + ?Sized),
        body: &[u8],
    ) -> Result<Verified, VerifyError> {
        match &self.verifier {
            Some(v) => v.verify(headers, body),
            None => Err(VerifyError::NoSecret),
        }
    }

    /// `chat.postMessage`: posts a message (text and blocks).
    pub async fn post_message(
        &self,
        message: &SlackMessage,
    ) -> Result<PostedMessage, IntegrationError> {
        let token = String::from_utf8_lossy(self.token.expose());
        let resp = send(
            SERVICE,
            self.http
                .post(format!("{}/chat.postMessage", self.base))
                .bearer_auth(token)
                .json(message),
        )
        .await?;
        let envelope: Envelope = json(SERVICE, resp).await?;
        if !envelope.ok {
            return Err(IntegrationError::Api {
                service: SERVICE,
                error: envelope.error.unwrap_or_else(|| "unknown error".into()),
            });
        }
        serde_json::from_value(envelope.rest).map_err(|e| IntegrationError::Decode {
            service: SERVICE,
            message: e.to_string(),
        })
    }
}
