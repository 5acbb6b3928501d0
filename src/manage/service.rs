//! What the routes do: tenant-scoped webhooks over a [`WebhookManager`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::problem::Problem;
use super::{Identify, TENANT_ATTRIBUTE};
use crate::bus::Bus;
use crate::event::Event;
use crate::signature::{Secret, StandardWebhooks};
use crate::webhook::{
    Filter, RetryConfig, SsrfGuard, WebhookBuilder, WebhookError, WebhookId, WebhookManager,
    WebhookSink, WireFormat,
};

/// Longest URL accepted.
const MAX_URL: usize = 2048;
/// Longest name accepted.
const MAX_NAME: usize = 256;
/// Most event patterns per webhook.
const MAX_EVENTS: usize = 100;
/// How long a rotated-out secret keeps signing by default (a day).
const DEFAULT_GRACE_SECONDS: u64 = 24 * 3600;
/// The longest grace for a rotated-out secret (a week).
const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

pub(super) struct Limits {
    pub(super) max_endpoints: usize,
    pub(super) max_body: usize,
    pub(super) allow_loopback: bool,
    pub(super) rate: Option<super::limit::TenantLimit>,
}

/// A webhook's definition as kept (no secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) id: String,
    pub(super) tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(super) created_at: OffsetDateTime,
    pub(super) name: String,
    pub(super) url: String,
    pub(super) events: Vec<String>,
    #[serde(default)]
    pub(super) filters: Option<Value>,
    #[serde(default)]
    pub(super) retry_config: Option<Value>,
    #[serde(default)]
    pub(super) format: Option<Value>,
    #[serde(default)]
    pub(super) templates: Option<Value>,
}

/// A webhook's signing secrets (kept in the secrets file, never in the
/// store): the current one, and after a rotation the previous one, which
/// signs alongside until `previous_until`.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Keys {
    pub(super) secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) previous_until: Option<OffsetDateTime>,
}

impl Keys {
    fn new(secret: String) -> Keys {
        Keys {
            secret,
            previous: None,
            previous_until: None,
        }
    }

    /// The previous secret while it still signs.
    fn previous_now(&self) -> Option<&str> {
        match (&self.previous, self.previous_until) {
            (Some(p), Some(until)) if until > OffsetDateTime::now_utc() => Some(p),
            _ => None,
        }
    }
}

struct Entry {
    record: Record,
    handle: WebhookId,
    keys: Keys,
}

/// Which tenant each webhook (by its id, which is also its name on the
/// bus) belongs to, for the conditions of webhooks that take the bus's own
/// events: read on the emitting thread, written on create, restore and
/// delete.
type Owners = Arc<std::sync::RwLock<std::collections::HashMap<String, String>>>;

pub(super) struct Inner {
    bus: Bus,
    owners: Owners,
    pub(super) webhooks: Arc<WebhookManager>,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Held by an update or a delete while it runs.
    changes: tokio::sync::Mutex<()>,
    pub(super) identify: Identify,
    pub(super) limits: Limits,
    #[cfg(feature = "durable")]
    persist: Option<super::persist::Persist>,
}

/// The fields a create or a patch may carry.
const FIELDS: [&str; 8] = [
    "name",
    "url",
    "events",
    "secret",
    "filters",
    "retry_config",
    "format",
    "templates",
];

pub(super) fn object(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::bad_json("the body must be a JSON object")),
        Err(e) => Err(Problem::bad_json(format!("the body is not JSON: {e}"))),
    }
}

fn string(map: &Map<String, Value>, field: &str) -> Result<Option<String>, Problem> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Problem::invalid(field, format!("{field} must be a string"))),
    }
}

fn strings(map: &Map<String, Value>, field: &str) -> Result<Option<Vec<String>>, Problem> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(Problem::invalid(field, format!("{field} must be strings"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(Problem::invalid(
            field,
            format!("{field} must be an array of strings"),
        )),
    }
}

fn value(map: &Map<String, Value>, field: &str) -> Option<Value> {
    map.get(field).filter(|v| !v.is_null()).cloned()
}

fn from_value<T: serde::de::DeserializeOwned>(
    field: &str,
    v: &Option<Value>,
) -> Result<Option<T>, Problem> {
    v.clone()
        .map(serde_json::from_value::<T>)
        .transpose()
        .map_err(|e| Problem::invalid(field, format!("{field}: {e}")))
}

/// The field a webhook error is about, and the problem for it.
fn problem_of(e: WebhookError) -> Problem {
    let field = match &e {
        WebhookError::InvalidUrl(_)
        | WebhookError::InsecureUrl(_)
        | WebhookError::BlockedAddress(_) => Some("url"),
        WebhookError::Pattern(_) => Some("events"),
        WebhookError::Filter(_) => Some("filters"),
        WebhookError::Template(_) => Some("templates"),
        WebhookError::Signature(_) => Some("secret"),
        WebhookError::NotFound(_) => return Problem::not_found("the webhook"),
        WebhookError::Subscribe(_) => return Problem::internal(e.to_string()),
        _ => None,
    };
    let p = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "Invalid field",
        e.to_string(),
    );
    match field {
        Some(f) => p.field(f),
        None => p,
    }
}

/// The `{since}` body of retry_failed and replay (absent: everything).
fn since(body: &[u8]) -> Result<OffsetDateTime, Problem> {
    let map = object(body)?;
    if let Some(k) = map.keys().find(|k| k.as_str() != "since") {
        return Err(Problem::invalid(k, format!("unknown field {k:?}")));
    }
    match string(&map, "since")? {
        Some(s) => OffsetDateTime::parse(&s, &Rfc3339)
            .map_err(|e| Problem::invalid("since", format!("since must be RFC 3339: {e}"))),
        None => Ok(OffsetDateTime::UNIX_EPOCH),
    }
}

/// The first segment of the bus's own event types (`hookbus.dropped`, …).
const BUS_PREFIX: &str = "hookbus";

/// Whether `event` is for `tenant`'s webhooks: its `tenant` attribute says
/// so; or it is one of the bus's own events (they carry no tenant) about a
/// webhook of `tenant`, named by its `subscriber` or `webhook` field (a
/// webhook's name on the bus is its id). The bus's events about no webhook
/// (a store, a Kafka source) and about other tenants' webhooks are not.
fn for_tenant(event: &Event, tenant: &str, owners: &Owners) -> bool {
    match event.extension(TENANT_ATTRIBUTE) {
        Some(value) => value.to_wire_string() == tenant,
        None if crate::catalog::bus::is_bus_event(event.event_type()) => {
            let data = event.data();
            let owners = owners.read().unwrap_or_else(|e| e.into_inner());
            ["subscriber", "webhook"].iter().any(|field| {
                data[field]
                    .as_str()
                    .and_then(|id| owners.get(id))
                    .is_some_and(|owner| owner == tenant)
            })
        }
        None => false,
    }
}

fn new_id() -> String {
    format!("wh_{}", uuid::Uuid::new_v4().simple())
}

fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = StandardWebhooks::secret_from_bytes(&bytes).expect("32 bytes is a valid length");
    String::from_utf8_lossy(secret.expose()).into_owned()
}

fn check_secret(secret: &str) -> Result<(), Problem> {
    if !secret.starts_with("whsec_") {
        return Err(Problem::invalid(
            "secret",
            "a secret must be a Standard Webhooks secret: whsec_ followed by base64",
        ));
    }
    StandardWebhooks::key(&Secret::from(secret))
        .map(drop)
        .map_err(|e| Problem::invalid("secret", e.to_string()))
}

fn is_loopback_name(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => a.is_loopback(),
    }
}

impl Inner {
    pub(super) fn new(bus: &Bus, identify: Identify, limits: Limits) -> Inner {
        Inner {
            bus: bus.clone(),
            owners: Owners::default(),
            webhooks: Arc::new(WebhookManager::new(bus)),
            entries: Mutex::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
            identify,
            limits,
            #[cfg(feature = "durable")]
            persist: None,
        }
    }

    /// Opens the persisted webhooks and registers them again.
    #[cfg(feature = "durable")]
    pub(super) fn with_store(
        mut self,
        store: crate::store::Store,
        secrets: std::path::PathBuf,
    ) -> Result<Inner, super::ManageError> {
        let (persist, records, keys) = super::persist::Persist::open(store, secrets)?;
        self.persist = Some(persist);
        for record in records {
            let Some(mut secret) = keys.get(&record.id).cloned() else {
                tracing::error!(webhook = %record.id, tenant = %record.tenant, "hookbus manage: no secret kept for this webhook; it is not registered");
                continue;
            };
            if secret.previous_now().is_none() {
                secret = Keys::new(secret.secret);
            }
            match self.register(&record, &secret) {
                Ok(handle) => {
                    self.own(&record);
                    self.lock().insert(
                        record.id.clone(),
                        Entry {
                            record,
                            handle,
                            keys: secret,
                        },
                    );
                }
                Err(p) => {
                    tracing::error!(webhook = %record.id, tenant = %record.tenant, problem = %p.detail, "hookbus manage: a kept webhook cannot be registered again");
                }
            }
        }
        Ok(self)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn count(&self) -> usize {
        self.lock().len()
    }

    fn check_url(&self, text: &str) -> Result<(), Problem> {
        if text.len() > MAX_URL {
            return Err(Problem::invalid(
                "url",
                format!("the URL is longer than {MAX_URL} bytes"),
            ));
        }
        let url = url::Url::parse(text)
            .map_err(|e| Problem::invalid("url", format!("invalid URL: {e}")))?;
        let host = url
            .host()
            .ok_or_else(|| Problem::invalid("url", "the URL has no host"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Problem::invalid(
                "url",
                "credentials in the URL are not accepted",
            ));
        }
        let loopback = is_loopback_name(&host);
        match url.scheme() {
            "https" => {}
            "http" if loopback && self.limits.allow_loopback => {}
            "http" => {
                return Err(Problem::invalid("url", "the URL must be https"));
            }
            other => {
                return Err(Problem::invalid(
                    "url",
                    format!("scheme {other:?} is not supported; use https"),
                ));
            }
        }
        if loopback && !self.limits.allow_loopback {
            return Err(Problem::invalid(
                "url",
                format!("{host} is a loopback address: webhooks may not target it"),
            ));
        }
        Ok(())
    }

    fn guard(&self) -> SsrfGuard {
        let guard = SsrfGuard::new();
        if self.limits.allow_loopback {
            guard
                .allow("127.0.0.0/8")
                .and_then(|g| g.allow("::1"))
                .unwrap_or_else(|_| SsrfGuard::new())
        } else {
            guard
        }
    }

    /// The webhook builder of a record, checked field by field.
    fn builder(&self, r: &Record, keys: &Keys) -> Result<WebhookBuilder, Problem> {
        let secret = keys.secret.as_str();
        self.check_url(&r.url)?;
        if r.name.trim().is_empty() || r.name.len() > MAX_NAME {
            return Err(Problem::invalid(
                "name",
                format!("name must be 1 to {MAX_NAME} bytes"),
            ));
        }
        if r.events.is_empty() || r.events.len() > MAX_EVENTS {
            return Err(Problem::invalid(
                "events",
                format!("events must name 1 to {MAX_EVENTS} event types or patterns"),
            ));
        }
        let patterns = r
            .events
            .iter()
            .map(|e| {
                crate::Pattern::new(e).map_err(|err| Problem::invalid("events", err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_secret(secret)?;
        let filter: Option<Filter> = from_value("filters", &r.filters)?;
        let retry: Option<RetryConfig> = from_value("retry_config", &r.retry_config)?;
        let format: Option<WireFormat> = from_value("format", &r.format)?;
        let templates: Option<BTreeMap<String, Value>> = from_value("templates", &r.templates)?;
        // During a rotation both sign (Standard Webhooks sends one
        // signature per secret), the new one first.
        let secrets = std::iter::once(secret).chain(keys.previous_now());
        // Routed by its event types and its tenant's key; a PATCH re-routes
        // the one subscription in place (WebhookManager::update), durable or
        // not, so no event emitted meanwhile misses it or comes twice.
        let mut b = WebhookSink::builder(r.url.clone())
            .name(r.id.clone())
            .secrets(secrets.map(str::to_owned))
            .format(format.unwrap_or_default());
        if let Some(f) = filter {
            b = b.filter_parsed(f);
        }
        if let Some(retry) = retry {
            b = b.retry(retry.into());
        }
        for (pattern, t) in templates.unwrap_or_default() {
            b = b.template_for(pattern, t);
        }
        let b = b.events(r.events.iter().cloned()).ssrf_guard(self.guard());
        // The bus's own events carry no tenant: a webhook that names a
        // `hookbus.` pattern is routed by its patterns alone, and a condition
        // takes its tenant's events and the bus's events about its tenant's
        // webhooks.
        let b = if patterns
            .iter()
            .any(|p| p.first_literal() == Some(BUS_PREFIX))
        {
            let (tenant, owners) = (r.tenant.clone(), self.owners.clone());
            b.condition(move |e: &Event| for_tenant(e, &tenant, &owners))
        } else {
            b.key(TENANT_ATTRIBUTE, r.tenant.clone())
        };
        #[cfg(feature = "durable")]
        let b = match &self.persist {
            Some(p) => b.durable(p.store()),
            None => b,
        };
        Ok(b)
    }

    /// Records that `r`'s webhook is its tenant's (see [`Owners`]).
    fn own(&self, r: &Record) {
        self.owners
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(r.id.clone(), r.tenant.clone());
    }

    fn disown(&self, id: &str) {
        self.owners
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    #[cfg(feature = "durable")]
    fn register(&self, r: &Record, keys: &Keys) -> Result<WebhookId, Problem> {
        let b = self.builder(r, keys)?;
        self.webhooks.register(b).map_err(problem_of)
    }

    /// The entry `id` of `tenant`, or 404 (another tenant's too).
    fn find<'a>(
        entries: &'a BTreeMap<String, Entry>,
        tenant: &str,
        id: &str,
    ) -> Result<&'a Entry, Problem> {
        entries
            .get(id)
            .filter(|e| e.record.tenant == tenant)
            .ok_or_else(|| Problem::not_found("the webhook"))
    }

    fn handle(&self, tenant: &str, id: &str) -> Result<WebhookId, Problem> {
        let entries = self.lock();
        Self::find(&entries, tenant, id).map(|e| e.handle.clone())
    }

    fn view(&self, e: &Entry) -> Value {
        let info = self.webhooks.get(&e.handle).ok();
        // Events given up (or refused while disabled) that retry_failed
        // would send again.
        let failed: usize = self
            .webhooks
            .sink_of(&e.handle)
            .map(|s| s.dead_letters().iter().map(|l| l.events.len()).sum())
            .unwrap_or(0);
        let r = &e.record;
        json!({
            "id": r.id,
            "name": r.name,
            "url": r.url,
            "events": r.events,
            "filters": r.filters,
            "retry_config": r.retry_config,
            "format": r.format.clone().unwrap_or_else(|| json!(WireFormat::default())),
            "templates": r.templates,
            "status": if info.is_some_and(|i| i.enabled) { "enabled" } else { "disabled" },
            "failed_events": failed,
            "created_at": r.created_at.format(&Rfc3339).unwrap_or_default(),
        })
    }

    #[cfg(feature = "durable")]
    fn save(&self, r: &Record, keys: Option<&Keys>) -> Result<(), Problem> {
        match &self.persist {
            Some(p) => p.save(r, keys),
            None => Ok(()),
        }
    }

    #[cfg(not(feature = "durable"))]
    fn save(&self, _r: &Record, _keys: Option<&Keys>) -> Result<(), Problem> {
        Ok(())
    }

    pub(super) fn create(&self, tenant: &str, body: &[u8]) -> Result<Value, Problem> {
        let map = object(body)?;
        if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Problem::invalid(k, format!("unknown field {k:?}")));
        }
        let name =
            string(&map, "name")?.ok_or_else(|| Problem::invalid("name", "name is required"))?;
        let url = string(&map, "url")?.ok_or_else(|| Problem::invalid("url", "url is required"))?;
        let events = strings(&map, "events")?
            .ok_or_else(|| Problem::invalid("events", "events is required"))?;
        let keys = Keys::new(string(&map, "secret")?.unwrap_or_else(new_secret));
        let record = Record {
            id: new_id(),
            tenant: tenant.to_owned(),
            created_at: OffsetDateTime::now_utc(),
            name,
            url,
            events,
            filters: value(&map, "filters"),
            retry_config: value(&map, "retry_config"),
            format: value(&map, "format"),
            templates: value(&map, "templates"),
        };
        // Checked in full before anything is kept or subscribed.
        let builder = self.builder(&record, &keys)?;
        let mut entries = self.lock();
        let owned = entries
            .values()
            .filter(|e| e.record.tenant == tenant)
            .count();
        if owned >= self.limits.max_endpoints {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "endpoint-limit",
                "Endpoint limit reached",
                format!("this tenant has {owned} webhooks, the most allowed; delete one first"),
            ));
        }
        self.save(&record, Some(&keys))?;
        self.own(&record);
        let handle = match self.webhooks.register(builder) {
            Ok(h) => h,
            Err(e) => {
                self.disown(&record.id);
                self.forget(&record.id);
                return Err(problem_of(e));
            }
        };
        let entry = Entry {
            record,
            handle,
            keys,
        };
        let mut view = self.view(&entry);
        view["secret"] = Value::String(entry.keys.secret.clone());
        entries.insert(entry.record.id.clone(), entry);
        Ok(view)
    }

    #[cfg(feature = "durable")]
    fn forget(&self, id: &str) {
        if let Some(p) = &self.persist {
            p.remove(id);
        }
    }

    #[cfg(not(feature = "durable"))]
    fn forget(&self, _id: &str) {}

    pub(super) fn list(&self, tenant: &str) -> Value {
        let entries = self.lock();
        let data: Vec<Value> = entries
            .values()
            .filter(|e| e.record.tenant == tenant)
            .map(|e| self.view(e))
            .collect();
        json!({ "data": data })
    }

    pub(super) fn get(&self, tenant: &str, id: &str) -> Result<Value, Problem> {
        let entries = self.lock();
        Self::find(&entries, tenant, id).map(|e| self.view(e))
    }

    pub(super) async fn update(
        &self,
        tenant: &str,
        id: &str,
        body: &[u8],
    ) -> Result<Value, Problem> {
        let map = object(body)?;
        // An id in the body must be this one: naming another webhook (of
        // this tenant or another) changes nothing.
        if let Some(other) = map.get("id")
            && other.as_str() != Some(id)
        {
            return Err(Problem::not_found("the webhook named by \"id\""));
        }
        if let Some(k) = map
            .keys()
            .find(|k| k.as_str() != "id" && !FIELDS.contains(&k.as_str()))
        {
            return Err(Problem::invalid(k, format!("unknown field {k:?}")));
        }
        // One change at a time: a durable webhook's update awaits.
        let _one = self.changes.lock().await;
        let (old, old_keys, handle) = {
            let entries = self.lock();
            let entry = Self::find(&entries, tenant, id)?;
            (
                entry.record.clone(),
                entry.keys.clone(),
                entry.handle.clone(),
            )
        };
        let mut record = old.clone();
        if let Some(n) = string(&map, "name")? {
            record.name = n;
        }
        if let Some(u) = string(&map, "url")? {
            record.url = u;
        }
        if let Some(e) = strings(&map, "events")? {
            record.events = e;
        }
        for (field, slot) in [
            ("filters", &mut record.filters),
            ("retry_config", &mut record.retry_config),
            ("format", &mut record.format),
            ("templates", &mut record.templates),
        ] {
            if let Some(v) = value(&map, field) {
                *slot = Some(v);
            }
        }
        // A secret given here replaces every secret at once (no grace:
        // rotate_secret is the call for that).
        let new_keys = string(&map, "secret")?.map(Keys::new);
        let keys = new_keys.clone().unwrap_or_else(|| old_keys.clone());
        let builder = self.builder(&record, &keys)?;
        self.save(&record, new_keys.as_ref())?;
        match self.resubscribe(&handle, builder).await {
            Ok(handle) => {
                let mut entries = self.lock();
                let entry = entries
                    .get_mut(id)
                    .expect("deletes wait for changes under way");
                entry.record = record;
                entry.keys = keys;
                entry.handle = handle;
                Ok(self.view(entry))
            }
            Err(e) => {
                // Keep the definition as it was.
                let _ = self.save(&old, new_keys.as_ref().map(|_| &old_keys));
                Err(problem_of(e))
            }
        }
    }

    /// Puts a webhook's new settings in place, keeping its state and its
    /// subscription: every webhook has the same mailbox-side settings, so
    /// the manager re-routes its subscription to the new events (and key)
    /// and swaps the endpoint in place, durable or not, and no event
    /// emitted meanwhile misses it.
    async fn resubscribe(
        &self,
        handle: &WebhookId,
        builder: WebhookBuilder,
    ) -> Result<WebhookId, WebhookError> {
        self.webhooks
            .update(handle, builder)
            .map(|()| handle.clone())
    }

    pub(super) async fn delete(&self, tenant: &str, id: &str) -> Result<(), Problem> {
        let _one = self.changes.lock().await;
        let mut entries = self.lock();
        let handle = Self::find(&entries, tenant, id)?.handle.clone();
        self.forget(id);
        self.disown(id);
        entries.remove(id);
        self.webhooks.delete(&handle).map_err(problem_of)
    }

    pub(super) async fn set_enabled(
        &self,
        tenant: &str,
        id: &str,
        enabled: bool,
    ) -> Result<Value, Problem> {
        // Not while an update puts new settings in place.
        let _one = self.changes.lock().await;
        let entries = self.lock();
        let entry = Self::find(&entries, tenant, id)?;
        if enabled {
            self.webhooks.enable(&entry.handle)
        } else {
            self.webhooks.disable(&entry.handle)
        }
        .map_err(problem_of)?;
        Ok(self.view(entry))
    }

    pub(super) async fn test(&self, tenant: &str, id: &str, body: &[u8]) -> Result<Value, Problem> {
        let handle = self.handle(tenant, id)?;
        let map = object(body)?;
        if let Some(k) = map
            .keys()
            .find(|k| !["event_type", "payload"].contains(&k.as_str()))
        {
            return Err(Problem::invalid(k, format!("unknown field {k:?}")));
        }
        let ty = string(&map, "event_type")?
            .ok_or_else(|| Problem::invalid("event_type", "event_type is required"))?;
        let payload = map.get("payload").cloned().unwrap_or(Value::Null);
        let event = Event::builder(ty)
            .data(payload)
            .extension(TENANT_ATTRIBUTE, tenant)
            .build()
            .map_err(|e| Problem::invalid("event_type", e.to_string()))?;
        let r = self
            .webhooks
            .test(&handle, event)
            .await
            .map_err(problem_of)?;
        Ok(json!({
            "status": if r.success { "success" } else { "failed" },
            "response_code": r.status_code,
            "response_body": r.response_excerpt,
            "latency_ms": r.latency.as_millis() as u64,
            "error": r.error,
        }))
    }

    pub(super) fn deliveries(
        &self,
        tenant: &str,
        id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Value, Problem> {
        let handle = self.handle(tenant, id)?;
        let all = self
            .webhooks
            .deliveries(&handle, usize::MAX)
            .map_err(problem_of)?;
        let key = |d: &crate::webhook::DeliveryAttempt| {
            format!(
                "{}:{}:{}",
                d.time.unix_timestamp_nanos(),
                d.attempt,
                d.event_id
            )
        };
        let start = match cursor {
            None => 0,
            Some(c) => {
                let (nanos, _) = c
                    .split_once(':')
                    .ok_or_else(|| Problem::invalid("cursor", "not a cursor from next_cursor"))?;
                let nanos: i128 = nanos
                    .parse()
                    .map_err(|_| Problem::invalid("cursor", "not a cursor from next_cursor"))?;
                match all.iter().position(|d| key(d) == c) {
                    Some(i) => i + 1,
                    // Rotated out of the log: resume at what is older.
                    None => all
                        .iter()
                        .position(|d| d.time.unix_timestamp_nanos() < nanos)
                        .unwrap_or(all.len()),
                }
            }
        };
        let page: Vec<_> = all.iter().skip(start).take(limit).collect();
        let next = (start + page.len() < all.len())
            .then(|| page.last().map(|d| key(d)))
            .flatten();
        let data: Vec<Value> = page
            .iter()
            .map(|d| {
                json!({
                    "event_id": d.event_id,
                    "event_type": d.event_type,
                    "success": d.success,
                    "response_code": d.status_code,
                    "attempts": d.attempt,
                    "at": d.time.format(&Rfc3339).unwrap_or_default(),
                    "error": d.error,
                })
            })
            .collect();
        Ok(json!({ "data": data, "next_cursor": next }))
    }

    pub(super) fn retry_failed(
        self: &Arc<Self>,
        tenant: &str,
        id: &str,
        body: &[u8],
    ) -> Result<Value, Problem> {
        let handle = self.handle(tenant, id)?;
        let since = since(body)?;
        let sink = self.webhooks.sink_of(&handle).map_err(problem_of)?;
        let retried: usize = sink
            .dead_letters()
            .iter()
            .filter(|l| l.time >= since)
            .map(|l| l.events.len())
            .sum();
        let inner = self.clone();
        tokio::spawn(async move {
            if let Err(e) = inner.webhooks.retry_failed(&handle, since).await {
                tracing::warn!(error = %e, "hookbus manage: retry_failed");
            }
        });
        Ok(json!({ "retried": retried }))
    }

    /// Gives a webhook a new secret (given, or generated); the old one
    /// keeps signing alongside for `grace_seconds` (default a day, at most
    /// a week; 0: it stops at once). The new secret is in the answer, and
    /// nowhere after.
    pub(super) async fn rotate(
        self: &Arc<Self>,
        tenant: &str,
        id: &str,
        body: &[u8],
    ) -> Result<Value, Problem> {
        let map = object(body)?;
        if let Some(k) = map
            .keys()
            .find(|k| !["secret", "grace_seconds"].contains(&k.as_str()))
        {
            return Err(Problem::invalid(k, format!("unknown field {k:?}")));
        }
        let secret = string(&map, "secret")?.unwrap_or_else(new_secret);
        check_secret(&secret)?;
        let grace = match map.get("grace_seconds") {
            None | Some(Value::Null) => DEFAULT_GRACE_SECONDS,
            Some(v) => v
                .as_u64()
                .filter(|g| *g <= MAX_GRACE_SECONDS)
                .ok_or_else(|| {
                    Problem::invalid(
                        "grace_seconds",
                        format!("grace_seconds must be 0 to {MAX_GRACE_SECONDS}"),
                    )
                })?,
        };
        let _one = self.changes.lock().await;
        let (record, old_keys, handle) = {
            let entries = self.lock();
            let e = Self::find(&entries, tenant, id)?;
            (e.record.clone(), e.keys.clone(), e.handle.clone())
        };
        if Secret::from(secret.as_str()) == Secret::from(old_keys.secret.as_str()) {
            return Err(Problem::invalid(
                "secret",
                "the new secret must differ from the current one",
            ));
        }
        let until =
            (grace > 0).then(|| OffsetDateTime::now_utc() + time::Duration::seconds(grace as i64));
        let keys = Keys {
            secret,
            previous: until.map(|_| old_keys.secret.clone()),
            previous_until: until,
        };
        let builder = self.builder(&record, &keys)?;
        self.save(&record, Some(&keys))?;
        match self.resubscribe(&handle, builder).await {
            Ok(h) => {
                let mut entries = self.lock();
                let e = entries
                    .get_mut(id)
                    .expect("deletes wait for changes under way");
                e.keys = keys.clone();
                e.handle = h;
            }
            Err(e) => {
                let _ = self.save(&record, Some(&old_keys));
                return Err(problem_of(e));
            }
        }
        if let Some(until) = until {
            self.expire_at(id.to_owned(), until);
        }
        Ok(json!({
            "id": id,
            "secret": keys.secret,
            "previous_valid_until": until.and_then(|t| t.format(&Rfc3339).ok()),
        }))
    }

    /// Stops the previous secret of `id` signing at `until` (unless the
    /// secrets changed again meanwhile).
    pub(super) fn expire_at(self: &Arc<Self>, id: String, until: OffsetDateTime) {
        let inner = Arc::downgrade(self);
        tokio::spawn(async move {
            let wait = std::time::Duration::try_from(until - OffsetDateTime::now_utc())
                .unwrap_or_default();
            tokio::time::sleep(wait).await;
            if let Some(inner) = inner.upgrade() {
                inner.expire_previous(&id, until).await;
            }
        });
    }

    /// Schedules the end of every previous secret still signing (after a
    /// restart).
    pub(super) fn expire_all(self: &Arc<Self>) {
        let pending: Vec<(String, OffsetDateTime)> = self
            .lock()
            .iter()
            .filter_map(|(id, e)| Some((id.clone(), e.keys.previous_until?)))
            .collect();
        for (id, until) in pending {
            self.expire_at(id, until);
        }
    }

    async fn expire_previous(&self, id: &str, until: OffsetDateTime) {
        let _one = self.changes.lock().await;
        let (record, keys, handle) = {
            let entries = self.lock();
            let Some(e) = entries.get(id) else { return };
            if e.keys.previous_until != Some(until) {
                return;
            }
            (
                e.record.clone(),
                Keys::new(e.keys.secret.clone()),
                e.handle.clone(),
            )
        };
        let builder = match self.builder(&record, &keys) {
            Ok(b) => b,
            Err(p) => {
                tracing::error!(webhook = %id, problem = %p.detail, "hookbus manage: cannot end the previous secret");
                return;
            }
        };
        if let Err(p) = self.save(&record, Some(&keys)) {
            tracing::error!(webhook = %id, problem = %p.detail, "hookbus manage: cannot keep the end of the previous secret");
        }
        match self.resubscribe(&handle, builder).await {
            Ok(h) => {
                if let Some(e) = self.lock().get_mut(id) {
                    e.keys = keys;
                    e.handle = h;
                }
            }
            Err(e) => {
                tracing::error!(webhook = %id, error = %e, "hookbus manage: cannot end the previous secret");
            }
        }
    }

    /// Sends again, in the background, the events this webhook delivered
    /// since `since` (a receiver that lost data); needs a store that keeps
    /// delivered events. The answer says how many.
    pub(super) fn replay(
        self: &Arc<Self>,
        tenant: &str,
        id: &str,
        body: &[u8],
    ) -> Result<Value, Problem> {
        let handle = self.handle(tenant, id)?;
        let since = since(body)?;
        #[cfg(feature = "durable")]
        if let Some(p) = &self.persist
            && p.store().keeps_delivered()
        {
            let n = p
                .store()
                .delivered_since(id, since.into(), usize::MAX)
                .map_err(|e| Problem::internal(format!("cannot read the store: {e}")))?
                .len();
            let inner = self.clone();
            tokio::spawn(async move {
                if let Err(e) = inner.webhooks.replay(&handle, since).await {
                    tracing::warn!(error = %e, "hookbus manage: replay");
                }
            });
            return Ok(json!({ "retried": n }));
        }
        let _ = (handle, since);
        Err(Problem::new(
            StatusCode::CONFLICT,
            "replay-unavailable",
            "Replay unavailable",
            "replay needs a store that keeps delivered events (StoreBuilder::keep_delivered; hookbus serve --keep-delivered-hours)",
        ))
    }

    /// Emits an event for `tenant`. With a store, the answer waits until
    /// every durable webhook that took it has it on disk (a 202 is never
    /// lost to a crash).
    pub(super) async fn emit(&self, tenant: &str, body: &[u8]) -> Result<Value, Problem> {
        let mut map = object(body)?;
        // `{type, data, subject?, id?, source?}`, or a CloudEvent in
        // structured mode (specversion 1.0 and its attributes); the tenant
        // is the caller's, never the body's.
        const EVENT_FIELDS: [&str; 9] = [
            "type",
            "data",
            "subject",
            "id",
            "source",
            "specversion",
            "time",
            "datacontenttype",
            "dataschema",
        ];
        if let Some(k) = map.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
            return Err(Problem::invalid(k, format!("unknown field {k:?}")));
        }
        if let Some(v) = string(&map, "specversion")?
            && v != "1.0"
        {
            return Err(Problem::invalid(
                "specversion",
                "specversion must be \"1.0\"",
            ));
        }
        let ty =
            string(&map, "type")?.ok_or_else(|| Problem::invalid("type", "type is required"))?;
        // Taken, not copied: the data can be most of the body.
        let data = map.remove("data").unwrap_or(Value::Null);
        let mut b = Event::builder(ty)
            .data(data)
            .extension(TENANT_ATTRIBUTE, tenant);
        if let Some(s) = string(&map, "subject")? {
            b = b.subject(s);
        }
        if let Some(i) = string(&map, "id")? {
            b = b.id(i);
        }
        if let Some(s) = string(&map, "source")? {
            b = b.source(s);
        }
        if let Some(t) = string(&map, "time")? {
            let t = OffsetDateTime::parse(&t, &Rfc3339)
                .map_err(|e| Problem::invalid("time", format!("time must be RFC 3339: {e}")))?;
            b = b.time(t);
        }
        if let Some(c) = string(&map, "datacontenttype")? {
            b = b.datacontenttype(c);
        }
        if let Some(d) = string(&map, "dataschema")? {
            b = b.dataschema(d);
        }
        let event = b
            .build()
            .map_err(|e| Problem::invalid("type", e.to_string()))?;
        let id = event.id().to_owned();
        self.bus.publish(event).await.map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-accepted",
                "Event not accepted",
                e.to_string(),
            )
        })?;
        Ok(json!({ "id": id }))
    }
}
