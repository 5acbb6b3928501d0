//! JIRA's REST API (v2): create an issue.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json as json_value};

use super::{IntegrationError, base_url, http_client, json, send};
use crate::signature::Secret;

const SERVICE: &str = "JIRA";

/// A JIRA client for one site (`https://company.atlassian.net`), with basic
/// authentication by user name (an e-mail on JIRA Cloud) and API token.
#[derive(Debug, Clone)]
pub struct JiraClient {
    http: reqwest::Client,
    base: String,
    username: String,
    token: Secret,
}

/// Who an issue is assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JiraUser {
    /// JIRA Cloud: the account id.
    AccountId(String),
    /// JIRA Server / Data Center: the user name.
    Name(String),
}

/// An issue to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraIssue {
    /// The project key (`ENG`).
    pub project: String,
    /// The issue type (`Task`, `Bug`).
    pub issue_type: String,
    /// The summary (one line).
    pub summary: String,
    /// The description (JIRA wiki markup in API v2).
    pub description: Option<String>,
    /// The priority name (`High`).
    pub priority: Option<String>,
    /// Labels.
    pub labels: Vec<String>,
    /// The assignee.
    pub assignee: Option<JiraUser>,
}

impl JiraIssue {
    /// An issue of `issue_type` in `project` with a summary.
    pub fn new(
        project: impl Into<String>,
        issue_type: impl Into<String>,
        summary: impl Into<String>,
    ) -> JiraIssue {
        JiraIssue {
            project: project.into(),
            issue_type: issue_type.into(),
            summary: summary.into(),
            description: None,
            priority: None,
            labels: Vec::new(),
            assignee: None,
        }
    }
    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> JiraIssue {
        self.description = Some(text.into());
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, name: impl Into<String>) -> JiraIssue {
        self.priority = Some(name.into());
        self
    }
    /// Sets the labels.
    pub fn labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> JiraIssue {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }
    /// Sets the assignee.
    pub fn assignee(mut self, user: JiraUser) -> JiraIssue {
        self.assignee = Some(user);
        self
    }

    /// The `{"fields": …}` body of `POST /rest/api/2/issue`.
    pub fn to_json(&self) -> Value {
        let mut fields = Map::new();
        fields.insert("project".into(), json_value!({ "key": self.project }));
        fields.insert("issuetype".into(), json_value!({ "name": self.issue_type }));
        fields.insert("summary".into(), json_value!(self.summary));
        if let Some(d) = &self.description {
            fields.insert("description".into(), json_value!(d));
        }
        if let Some(p) = &self.priority {
            fields.insert("priority".into(), json_value!({ "name": p }));
        }
        if !self.labels.is_empty() {
            fields.insert("labels".into(), json_value!(self.labels));
        }
        match &self.assignee {
            Some(JiraUser::AccountId(id)) => {
                fields.insert("assignee".into(), json_value!({ "accountId": id }));
            }
            Some(JiraUser::Name(name)) => {
                fields.insert("assignee".into(), json_value!({ "name": name }));
            }
            None => {}
        }
        json_value!({ "fields": fields })
    }
}

/// A created issue.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreatedIssue {
    /// The issue id.
    pub id: String,
    /// The issue key (`ENG-123`).
    pub key: String,
    /// The issue's API URL.
    #[serde(rename = "self", default)]
    pub url: String,
}

impl JiraClient {
    /// A client for the JIRA site at `site` (e.g. `https://company.atlassian.net`).
    pub fn new(
        site: &str,
        username: impl Into<String>,
        api_token: impl Into<Secret>,
    ) -> Result<JiraClient, IntegrationError> {
        Ok(JiraClient {
            http: http_client(),
            base: base_url("JIRA base URL", site)?,
            username: username.into(),
            token: api_token.into(),
        })
    }

    /// Creates an issue.
    pub async fn create_issue(&self, issue: &JiraIssue) -> Result<CreatedIssue, IntegrationError> {
        let mut credentials = self.username.clone().into_bytes();
        credentials.push(b':');
        credentials.extend_from_slice(self.token.expose());
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        );
        let resp = send(
            SERVICE,
            self.http
                .post(format!("{}/rest/api/2/issue", self.base))
                .header("Authorization", auth)
                .header("Accept", "application/json")
                .json(&issue.to_json()),
        )
        .await?;
        json(SERVICE, resp).await
    }
}
