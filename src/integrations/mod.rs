//! Thin, typed clients for what integrations do in reaction to events
//! (feature `integrations`): [`GitHubClient`] (issues, pull request comments,
//! labels, files, diffs), [`SlackClient`] (`chat.postMessage`, slash command
//! verification) and [`JiraClient`] (create an issue).
//!
//! Each takes its base URL as a setting (GitHub Enterprise, a JIRA site, a
//! local stand-in in tests). Tokens are [`Secret`](crate::signature::Secret)s:
//! they never appear in `Debug` output or in errors.
//!
//! ```no_run
//! use hookbus::integrations::{GitHubClient, NewIssue};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let github = GitHubClient::new(std::env::var("GITHUB_TOKEN")?, "username/repo")?;
//! let issue = github
//!     .create_issue(
//!         &NewIssue::new("Prediction: schema change may break the mobile app")
//!             .body("Confidence: 87%")
//!             .labels(["empathy-prediction", "needs-review"])
//!             .assignees(["tech-lead"]),
//!     )
//!     .await?;
//! println!("created #{}", issue.number);
//! # Ok(()) }
//! ```

mod github;
mod jira;
mod slack;

pub use github::{Comment, GitHubClient, Issue, Label, NewIssue, PrFile};
pub use jira::{CreatedIssue, JiraClient, JiraIssue, JiraUser};
pub use slack::{PostedMessage, SlackClient, SlackMessage};

use std::time::Duration;

/// Longest excerpt of an error response body kept in an error.
const EXCERPT: usize = 300;

/// Default timeout of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call to a service failed. Never contains a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrationError {
    /// A setting is invalid (e.g. a repository that is not `owner/name`).
    #[error("invalid {what}: {reason}")]
    Config {
        /// Which setting.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be sent or its answer not read.
    #[error("{service}: request failed: {message}")]
    Transport {
        /// The service called.
        service: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The service answered with a non-2xx status.
    #[error("{service} answered {status}: {excerpt}")]
    Status {
        /// The service called.
        service: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body.
        excerpt: String,
    },
    /// The service answered 2xx but reported an error (Slack's `"ok": false`).
    #[error("{service} reported an error: {error}")]
    Api {
        /// The service called.
        service: &'static str,
        /// The service's error code.
        error: String,
    },
    /// The answer is not the JSON expected.
    #[error("{service}: unexpected response: {message}")]
    Decode {
        /// The service called.
        service: &'static str,
        /// What did not fit.
        message: String,
    },
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEFAULT_TIMEOUT)
        .user_agent(concat!("hookbus/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

fn base_url(what: &'static str, url: &str) -> Result<String, IntegrationError> {
    let trimmed = url.trim_end_matches('/');
    if !(trimmed.starts_with("https://") || trimmed.starts_with("http://")) {
        return Err(IntegrationError::Config {
            what,
            reason: format!("{url:?} is not an http(s) URL"),
        });
    }
    Ok(trimmed.to_owned())
}

fn excerpt(text: &str) -> String {
    let mut end = text.len().min(EXCERPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Sends a request; a non-2xx answer is an error with a body excerpt.
async fn send(
    service: &'static str,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, IntegrationError> {
    let resp = req.send().await.map_err(|e| transport(service, e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    Err(IntegrationError::Status {
        service,
        status: status.as_u16(),
        excerpt: excerpt(&body),
    })
}

fn transport(service: &'static str, e: reqwest::Error) -> IntegrationError {
    IntegrationError::Transport {
        service,
        message: e.to_string(),
    }
}

async fn json<T: serde::de::DeserializeOwned>(
    service: &'static str,
    resp: reqwest::Response,
) -> Result<T, IntegrationError> {
    let bytes = resp.bytes().await.map_err(|e| transport(service, e))?;
    serde_json::from_slice(&bytes).map_err(|e| IntegrationError::Decode {
        service,
        message: e.to_string(),
    })
}
