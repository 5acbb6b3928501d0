//! GitHub's REST API: issues, comments, labels, pull request files and diffs.

use serde::{Deserialize, Serialize};

use super::{IntegrationError, base_url, http_client, json, send};
use crate::signature::Secret;

const SERVICE: &str = "GitHub";
/// GitHub's public API.
const DEFAULT_BASE: &str = "https://api.github.com";
const API_VERSION: &str = "2022-11-28";
/// GitHub lists at most 3000 files of a pull request, 100 per page.
const MAX_FILE_PAGES: u32 = 30;

/// A GitHub client for one repository, authenticated with a token (classic,
/// fine-grained or an app installation token).
#[derive(Debug, Clone)]
pub struct GitHubClient {
    http: reqwest::Client,
    base: String,
    repo: String,
    token: Secret,
}

/// An issue to create.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NewIssue {
    /// The title.
    pub title: String,
    /// The body (Markdown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Label names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Logins of the assignees.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assignees: Vec<String>,
}

impl NewIssue {
    /// An issue with a title.
    pub fn new(title: impl Into<String>) -> NewIssue {
        NewIssue {
            title: title.into(),
            ..NewIssue::default()
        }
    }
    /// Sets the body.
    pub fn body(mut self, body: impl Into<String>) -> NewIssue {
        self.body = Some(body.into());
        self
    }
    /// Sets the labels.
    pub fn labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> NewIssue {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }
    /// Sets the assignees.
    pub fn assignees<S: Into<String>>(mut self, logins: impl IntoIterator<Item = S>) -> NewIssue {
        self.assignees = logins.into_iter().map(Into::into).collect();
        self
    }
}

/// A created issue.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Issue {
    /// Its number in the repository.
    pub number: u64,
    /// Its page.
    pub html_url: String,
    /// Its title.
    #[serde(default)]
    pub title: String,
}

/// A created comment.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Comment {
    /// The comment id.
    pub id: u64,
    /// Its page.
    pub html_url: String,
}

/// A label on an issue or pull request.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Label {
    /// The label's name.
    pub name: String,
}

/// One file changed by a pull request.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrFile {
    /// The path.
    pub filename: String,
    /// `added`, `modified`, `removed`, `renamed`, …
    pub status: String,
    /// Lines added.
    #[serde(default)]
    pub additions: u64,
    /// Lines deleted.
    #[serde(default)]
    pub deletions: u64,
    /// Lines changed.
    #[serde(default)]
    pub changes: u64,
    /// The unified diff of this file (absent for binary or very large files).
    #[serde(default)]
    pub patch: Option<String>,
}

impl GitHubClient {
    /// A client for `repo` (`owner/name`) on api.github.com.
    pub fn new(token: impl Into<Secret>, repo: &str) -> Result<GitHubClient, IntegrationError> {
        let valid = repo.split_once('/').is_some_and(|(owner, name)| {
            let ok = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            };
            ok(owner) && ok(name)
        });
        if !valid {
            return Err(IntegrationError::Config {
                what: "GitHub repository",
                reason: format!("{repo:?} is not \"owner/name\""),
            });
        }
        Ok(GitHubClient {
            http: http_client(),
            base: DEFAULT_BASE.to_owned(),
            repo: repo.to_owned(),
            token: token.into(),
        })
    }

    /// Another API base URL (GitHub Enterprise: `https://host/api/v3`, or a
    /// local stand-in).
    pub fn base_url(mut self, url: &str) -> Result<GitHubClient, IntegrationError> {
        self.base = base_url("GitHub base URL", url)?;
        Ok(self)
    }

    /// The repository, `owner/name`.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.request_as(method, path, "application/vnd.github+json")
    }

    fn request_as(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: &'static str,
    ) -> reqwest::RequestBuilder {
        let token = String::from_utf8_lossy(self.token.expose());
        self.http
            .request(method, format!("{}/repos/{}{path}", self.base, self.repo))
            .bearer_auth(token)
            .header("Accept", accept)
            .header("X-GitHub-Api-Version", API_VERSION)
    }

    /// Creates an issue (title, body, labels, assignees).
    pub async fn create_issue(&self, issue: &NewIssue) -> Result<Issue, IntegrationError> {
        let resp = send(
            SERVICE,
            self.request(reqwest::Method::POST, "/issues").json(issue),
        )
        .await?;
        json(SERVICE, resp).await
    }

    /// Comments on a pull request (a pull request is an issue for comments).
    pub async fn comment_on_pr(&self, pr: u64, body: &str) -> Result<Comment, IntegrationError> {
        let resp = send(
            SERVICE,
            self.request(reqwest::Method::POST, &format!("/issues/{pr}/comments"))
                .json(&serde_json::json!({ "body": body })),
        )
        .await?;
        json(SERVICE, resp).await
    }

    /// Adds labels to an issue or pull request; returns all its labels.
    pub async fn add_labels<S: AsRef<str>>(
        &self,
        number: u64,
        labels: &[S],
    ) -> Result<Vec<Label>, IntegrationError> {
        let labels: Vec<&str> = labels.iter().map(AsRef::as_ref).collect();
        let resp = send(
            SERVICE,
            self.request(reqwest::Method::POST, &format!("/issues/{number}/labels"))
                .json(&serde_json::json!({ "labels": labels })),
        )
        .await?;
        json(SERVICE, resp).await
    }

    /// The files a pull request changes (all pages, up to GitHub's 3000).
    pub async fn pr_files(&self, pr: u64) -> Result<Vec<PrFile>, IntegrationError> {
        let mut files = Vec::new();
        for page in 1..=MAX_FILE_PAGES {
            let resp = send(
                SERVICE,
                self.request(
                    reqwest::Method::GET,
                    &format!("/pulls/{pr}/files?per_page=100&page={page}"),
                ),
            )
            .await?;
            let batch: Vec<PrFile> = json(SERVICE, resp).await?;
            let last = batch.len() < 100;
            files.extend(batch);
            if last {
                break;
            }
        }
        Ok(files)
    }

    /// A pull request's unified diff.
    pub async fn pr_diff(&self, pr: u64) -> Result<String, IntegrationError> {
        let resp = send(
            SERVICE,
            self.request_as(
                reqwest::Method::GET,
                &format!("/pulls/{pr}"),
                "application/vnd.github.diff",
            ),
        )
        .await?;
        resp.text().await.map_err(|e| super::transport(SERVICE, e))
    }
}
