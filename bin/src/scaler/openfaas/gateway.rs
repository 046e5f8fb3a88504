//! A thin client of the OpenFaaS gateway's REST API: basic auth, any 2xx is success,
//! connection failures and 5xx retried with backoff, errors worded for whoever must fix them;
//! and the function deployments the node asks for.

use super::OpenFaasConfig;
use anyhow::Context;
use functions::protocol::Invocation;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The gateway's `FunctionDeployment`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeployment {
    pub service: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub env_process: String,
    pub env_vars: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub limits: Resources,
    pub requests: Resources,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub memory: String,
    pub cpu: String,
}

/// The fields of the gateway's `FunctionStatus` we read.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    pub name: String,
    #[serde(default)]
    pub replicas: u64,
    #[serde(default)]
    pub available_replicas: u64,
}

/// Errors from the gateway, worded for the person who has to fix them.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the OpenFaaS gateway at {0} refused the credentials (401): check --openfaas-user and OPENFAAS_PASSWORD (the basic-auth secret)")]
    Unauthorized(String),
    #[error("not found on the OpenFaaS gateway (404): {0}")]
    NotFound(String),
    /// 400: the gateway will not do this however often it is asked (OpenFaaS CE: an image it
    /// cannot pull anonymously, or a function beyond its 15).
    #[error("the OpenFaaS gateway refused {what} (400): {body}")]
    Refused { what: String, body: String },
    /// The name is taken, usually by a function whose deletion has not finished.
    #[error("the OpenFaaS gateway answered that {0} already exists (a deleted function keeps its name until its pods are gone)")]
    AlreadyExists(String),
    #[error("the OpenFaaS gateway answered {status} to {what}: {body}")]
    Status { status: u16, what: String, body: String },
    #[error("cannot reach the OpenFaaS gateway for {what} after {attempts} attempts: {source}")]
    Unreachable {
        what: String,
        attempts: u32,
        source: reqwest::Error,
    },
}

/// A thin client of the gateway API.
#[derive(Clone, Debug)]
pub struct Gateway {
    http: reqwest::Client,
    pub(super) cfg: OpenFaasConfig,
}

impl Gateway {
    pub fn new(cfg: OpenFaasConfig) -> anyhow::Result<Gateway> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        Ok(Gateway { http, cfg })
    }

    fn ns_query(&self) -> String {
        self.cfg
            .namespace
            .as_deref()
            .map(|n| format!("?namespace={n}"))
            .unwrap_or_default()
    }

    /// Sends one request, retrying connection failures and 5xx; returns the 2xx body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<String, GatewayError> {
        let url = format!("{}{}", self.cfg.url.trim_end_matches('/'), path);
        let what = format!("{method} {path}");
        let mut delay = self.cfg.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .basic_auth(&self.cfg.user, self.cfg.password.as_deref());
            if let Some(b) = &body {
                req = req.json(b);
            }
            let retry = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(text);
                    }
                    let body: String = text.trim().chars().take(300).collect();
                    match status {
                        StatusCode::UNAUTHORIZED => {
                            return Err(GatewayError::Unauthorized(self.cfg.url.clone()))
                        }
                        StatusCode::NOT_FOUND => return Err(GatewayError::NotFound(what)),
                        StatusCode::BAD_REQUEST => return Err(GatewayError::Refused { what, body }),
                        // faas-netes answers a create whose Deployment still exists with a 500
                        // saying so: waiting helps, retrying at once does not.
                        s if s.is_server_error() && body.contains("already exists") => {
                            return Err(GatewayError::AlreadyExists(what))
                        }
                        s if s.is_server_error() && attempt < self.cfg.attempts => None,
                        s => {
                            return Err(GatewayError::Status {
                                status: s.as_u16(),
                                what,
                                body,
                            })
                        }
                    }
                }
                Err(e) if attempt < self.cfg.attempts => Some(e),
                Err(source) => {
                    return Err(GatewayError::Unreachable {
                        what,
                        attempts: attempt,
                        source,
                    })
                }
            };
            tracing::debug!(%what, attempt, error = ?retry, "gateway call failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    pub async fn deploy(&self, f: &FunctionDeployment) -> Result<(), GatewayError> {
        self.call(
            Method::POST,
            "/system/functions",
            Some(serde_json::to_value(f).unwrap_or_default()),
        )
        .await
        .map(drop)
    }

    pub async fn update(&self, f: &FunctionDeployment) -> Result<(), GatewayError> {
        self.call(
            Method::PUT,
            "/system/functions",
            Some(serde_json::to_value(f).unwrap_or_default()),
        )
        .await
        .map(drop)
    }

    pub async fn delete(&self, name: &str) -> Result<(), GatewayError> {
        let mut body = serde_json::json!({ "functionName": name });
        if let Some(ns) = &self.cfg.namespace {
            body["namespace"] = ns.clone().into();
        }
        self.call(Method::DELETE, "/system/functions", Some(body))
            .await
            .map(drop)
    }

    pub async fn scale(&self, name: &str, replicas: u32) -> Result<(), GatewayError> {
        let mut body = serde_json::json!({ "serviceName": name, "replicas": replicas });
        if let Some(ns) = &self.cfg.namespace {
            body["namespace"] = ns.clone().into();
        }
        let path = format!("/system/scale-function/{name}{}", self.ns_query());
        self.call(Method::POST, &path, Some(body)).await.map(drop)
    }

    /// The function's status; `None` if it does not exist.
    pub async fn status(&self, name: &str) -> Result<Option<FunctionStatus>, GatewayError> {
        let path = format!("/system/function/{name}{}", self.ns_query());
        match self.call(Method::GET, &path, None).await {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| GatewayError::Status {
                    status: 200,
                    what: format!("GET {path}"),
                    body: format!("unreadable FunctionStatus: {e}"),
                }),
            Err(GatewayError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The provider's name from `/system/info` (`provider.provider`), if the gateway says.
    pub async fn provider(&self) -> Result<Option<String>, GatewayError> {
        let text = match self.call(Method::GET, "/system/info", None).await {
            Ok(t) => t,
            Err(GatewayError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let info: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Ok(info["provider"]["provider"].as_str().map(str::to_string))
    }

    pub async fn list(&self) -> Result<Vec<FunctionStatus>, GatewayError> {
        let path = format!("/system/functions{}", self.ns_query());
        let text = self.call(Method::GET, &path, None).await?;
        serde_json::from_str(&text).map_err(|e| GatewayError::Status {
            status: 200,
            what: format!("GET {path}"),
            body: format!("unreadable function list: {e}"),
        })
    }

    pub async fn invoke_async(&self, name: &str, payload: &Invocation) -> Result<(), GatewayError> {
        let target = match &self.cfg.namespace {
            Some(ns) => format!("{name}.{ns}"),
            None => name.to_string(),
        };
        self.call(
            Method::POST,
            &format!("/async-function/{target}"),
            serde_json::to_value(payload).ok(),
        )
        .await
        .map(drop)
    }

    /// The deployment of one worker function (`id` is its worker id in `instances` mode).
    pub fn worker_deployment(&self, service: &str, id: Option<&str>) -> FunctionDeployment {
        let mut d = self.function_deployment(service, "worker");
        // Replicas share one spec, so each names itself after its pod.
        d.env_vars
            .insert("AUTOSCALE_ID".to_string(), id.unwrap_or("auto").to_string());
        d
    }

    /// The deployment of a function running `autoscale-node ROLE`.
    pub fn function_deployment(&self, service: &str, role: &str) -> FunctionDeployment {
        let env = BTreeMap::from([
            ("REDIS_URL".to_string(), self.cfg.worker_redis_url.clone()),
            (
                "AUTOSCALE_PROGRAM_START_TIME".to_string(),
                self.cfg.program_start.to_string(),
            ),
            // Long tasks: the watchdog must not cut the function off.
            ("exec_timeout".to_string(), "0".to_string()),
            ("write_timeout".to_string(), "3600s".to_string()),
            ("read_timeout".to_string(), "3600s".to_string()),
            ("mode".to_string(), "http".to_string()),
            ("upstream_url".to_string(), "http://127.0.0.1:8082".to_string()),
            // On SIGTERM the watchdog waits this long before it stops (default: write_timeout,
            // an hour here): a deleted function's pod, and so its name, would linger that long.
            ("healthcheck_interval".to_string(), "2s".to_string()),
        ]);
        FunctionDeployment {
            service: service.to_string(),
            image: self.cfg.image.clone(),
            namespace: self.cfg.namespace.clone(),
            env_process: format!("autoscale-node {role} --http 127.0.0.1:8082"),
            env_vars: env,
            labels: BTreeMap::from([
                (
                    "app.kubernetes.io/part-of".to_string(),
                    "autoscale-node".to_string(),
                ),
                ("autoscale-node/role".to_string(), role.to_string()),
                // The gateway's own autoscaler must not fight ours.
                ("com.openfaas.scale.min".to_string(), "1".to_string()),
                ("com.openfaas.scale.zero".to_string(), "false".to_string()),
            ]),
            annotations: BTreeMap::new(),
            // The original stack's small footprint.
            limits: Resources {
                memory: "128Mi".into(),
                cpu: "200m".into(),
            },
            requests: Resources {
                memory: "32Mi".into(),
                cpu: "50m".into(),
            },
        }
    }
}
