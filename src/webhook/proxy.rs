//! Egress proxies for webhook requests: one given explicitly, or the one
//! the environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), or none.
//!
//! Precedence: [`proxy(url)`](super::WebhookBuilder::proxy) wins; else,
//! with [`proxy_from_env(true)`](super::WebhookBuilder::proxy_from_env),
//! the environment as it is when the webhook is built; else (the default)
//! no proxy, whatever the environment says, so a library does not change
//! where it connects because of a variable set for something else.
//!
//! With a proxy, the proxy resolves and connects to the target, out of
//! reach of the [`SsrfGuard`](super::SsrfGuard)'s resolver: so before each
//! request the target's host is resolved here and refused if any of its
//! addresses is internal (the proxy's own host is not checked: it is the
//! operator's choice).

use std::net::IpAddr;

use super::error::{ProxyError, WebhookError};
use super::guard::SsrfGuard;

/// The proxy part of a [`WebhookBuilder`](super::WebhookBuilder).
#[derive(Clone, Default)]
pub(crate) struct ProxySettings {
    pub(crate) explicit: Option<String>,
    pub(crate) from_env: bool,
}

/// The proxies chosen for a client, and the hosts they live on.
#[derive(Default)]
pub(crate) struct Chosen {
    pub(crate) proxies: Vec<reqwest::Proxy>,
    /// The proxies' hosts (the guard's resolver lets them through).
    pub(crate) hosts: Vec<String>,
}

impl ProxySettings {
    /// What `Debug` may show (no credentials, no path).
    pub(crate) fn describe(&self) -> String {
        match &self.explicit {
            Some(p) => super::guard::redact_url(p),
            None if self.from_env => "from the environment".into(),
            None => "none".into(),
        }
    }

    /// The proxies to use, read from the environment (through `var`) when
    /// asked to.
    pub(crate) fn choose(
        &self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Chosen, WebhookError> {
        let mut chosen = Chosen::default();
        if let Some(url) = &self.explicit {
            let host = check_proxy_url(url, "proxy")?;
            chosen
                .proxies
                .push(reqwest::Proxy::all(url).map_err(|e| refused("proxy", e))?);
            chosen.hosts.push(host);
            return Ok(chosen);
        }
        if !self.from_env {
            return Ok(chosen);
        }
        let lookup = |names: &[&'static str]| -> Option<(&'static str, String)> {
            names
                .iter()
                .find_map(|n| var(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        };
        let no_proxy =
            lookup(&["no_proxy", "NO_PROXY"]).and_then(|(_, v)| reqwest::NoProxy::from_string(&v));
        // HTTP_PROXY in upper case can be set by a request header under
        // CGI ("httpoxy"): ignored there, as curl and reqwest do.
        let cgi = var("REQUEST_METHOD").is_some();
        let http_names: &[&'static str] = if cgi {
            &["http_proxy"]
        } else {
            &["http_proxy", "HTTP_PROXY"]
        };
        for (names, https) in [
            (&["https_proxy", "HTTPS_PROXY"][..], true),
            (http_names, false),
        ] {
            let Some((name, url)) = lookup(names) else {
                continue;
            };
            // A proxy URL without a scheme (`proxy:3128`) means http.
            let url = if url.contains("://") {
                url
            } else {
                format!("http://{url}")
            };
            let host = check_proxy_url(&url, name)?;
            let proxy = if https {
                reqwest::Proxy::https(&url)
            } else {
                reqwest::Proxy::http(&url)
            }
            .map_err(|e| refused(name, e))?;
            chosen.proxies.push(proxy.no_proxy(no_proxy.clone()));
            chosen.hosts.push(host);
        }
        Ok(chosen)
    }
}

fn refused(setting: &'static str, e: reqwest::Error) -> ProxyError {
    let source = super::error::HttpClientError::new(e);
    ProxyError::Refused { setting, source }
}

/// An http(s) proxy URL with a host: its host, or an error naming `what`.
fn check_proxy_url(text: &str, setting: &'static str) -> Result<String, ProxyError> {
    let url = url::Url::parse(text).map_err(|source| ProxyError::NotAUrl { setting, source })?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            let scheme = other.to_owned();
            return Err(ProxyError::Scheme { setting, scheme });
        }
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(ProxyError::NoHost { setting })?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned())
}

/// Refuses a target the guard would not let through: its IP, or any of the
/// addresses its name resolves to here.
pub(crate) async fn check_target(guard: &SsrfGuard, url: &url::Url) -> Result<(), String> {
    let host = match url.host() {
        Some(url::Host::Ipv4(a)) => return permit(guard, &[IpAddr::V4(a)], &a.to_string()),
        Some(url::Host::Ipv6(a)) => return permit(guard, &[IpAddr::V6(a)], &a.to_string()),
        Some(url::Host::Domain(d)) => d.to_owned(),
        None => return Err("SSRF guard: the URL has no host".into()),
    };
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map_err(|e| format!("SSRF guard: cannot resolve {host} to check it: {e}"))?
        .map(|a| a.ip())
        .collect();
    permit(guard, &addrs, &host)
}

fn permit(guard: &SsrfGuard, addrs: &[IpAddr], host: &str) -> Result<(), String> {
    let refused: Vec<String> = addrs
        .iter()
        .filter(|a| !guard.permits(**a))
        .map(ToString::to_string)
        .collect();
    if addrs.is_empty() || !refused.is_empty() {
        return Err(format!(
            "SSRF guard: {host} resolves to internal addresses ({}), which a proxy could connect to; add them to the allow-list to permit",
            refused.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn precedence_explicit_then_env_then_none() {
        let vars = env(&[("HTTPS_PROXY", "http://envproxy:3128")]);
        let explicit = ProxySettings {
            explicit: Some("http://mine:8080".into()),
            from_env: true,
        };
        assert_eq!(explicit.choose(&vars).unwrap().hosts, ["mine"]);
        let from_env = ProxySettings {
            explicit: None,
            from_env: true,
        };
        assert_eq!(from_env.choose(&vars).unwrap().hosts, ["envproxy"]);
        let default = ProxySettings::default();
        assert!(default.choose(&vars).unwrap().proxies.is_empty());
    }

    #[test]
    fn env_names_and_cgi() {
        let s = ProxySettings {
            explicit: None,
            from_env: true,
        };
        let chosen = s
            .choose(env(&[
                ("https_proxy", "lower:1"),
                ("HTTPS_PROXY", "http://upper:1"),
                ("HTTP_PROXY", "plain:2"),
            ]))
            .unwrap();
        assert_eq!(chosen.hosts, ["lower", "plain"]);
        let cgi = s
            .choose(env(&[
                ("HTTP_PROXY", "http://injected:1"),
                ("REQUEST_METHOD", "GET"),
            ]))
            .unwrap();
        assert!(cgi.hosts.is_empty());
    }

    #[tokio::test]
    async fn the_target_is_checked() {
        let guard = SsrfGuard::new();
        let blocked = url::Url::parse("https://169.254.169.254/latest").unwrap();
        assert!(check_target(&guard, &blocked).await.is_err());
        let local = url::Url::parse("http://localhost:1/").unwrap();
        assert!(check_target(&guard, &local).await.is_err());
        let public = url::Url::parse("https://93.184.215.14/").unwrap();
        assert!(check_target(&guard, &public).await.is_ok());
    }
}
